cwlVersion: v1.2
class: Workflow
label: "Alpine drought early warning: prepare (local) -> SPI/SPEI per tile (OSCAR, scatter) -> forecaster (OSCAR) -> map (local)"
doc: |
  Mirrors EURAC's Alpine drought digital twin at a small scale (see README.md). The index and forecaster
  steps carry oscar:Offload hints (in their tools); the light steps say offload: false, so `oscar-cwl`
  (with --offload hinted or all) runs only those on OSCAR, one index job per tile in parallel. Plain
  cwltool ignores the hint and runs everything locally.
$namespaces:
  oscar: https://oscar-plugins.readthedocs.io/cwl#
requirements:
  ScatterFeatureRequirement: {}
inputs:
  tiles: {type: int, default: 6, doc: number of tiles (laid out nearly square)}
  tile_size: {type: int, default: 20, doc: 5 km cells per tile side}
  years: {type: int, default: 35, doc: "of monthly data from January 1991 (at least 5; reference period 1991-2020)"}
  end_month: {type: int, default: 8, doc: last month of the record}
  seed: {type: int, default: 7}
  scale: {type: int, default: 3, doc: "index accumulation window in months: 1, 3, 6 or 12"}
outputs:
  warning_png: {type: File, outputSource: warning_map/map}
  summary_table: {type: File, outputSource: warning_map/table}
  report: {type: File, outputSource: warning_map/report}
  forecast_summary: {type: File, outputSource: forecast/summary}
  index_summaries: {type: "File[]", outputSource: indices/summary}
  index_files: {type: "File[]", outputSource: indices/indices}
  region: {type: File, outputSource: prepare/region}
steps:
  prepare:
    run: tools/prepare.cwl
    hints:
      oscar:Offload: {offload: false}
    in: {tiles: tiles, tile_size: tile_size, years: years, end_month: end_month, seed: seed}
    out: [tiles, region]
  indices:
    run: tools/indices.cwl
    scatter: tile
    in: {tile: prepare/tiles, scale: scale}
    out: [indices, summary]
  forecast:
    run: tools/forecast.cwl
    in: {indices: indices/indices}
    out: [forecast, summary]
  warning_map:
    run: tools/warning_map.cwl
    hints:
      oscar:Offload: {offload: false}
    in:
      region: prepare/region
      forecast: forecast/forecast
      forecast_summary: forecast/summary
      indices: indices/indices
      summaries: indices/summary
    out: [map, table, report]
