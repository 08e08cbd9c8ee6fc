cwlVersion: v1.2
class: Workflow
label: "DT-Flood scenario: prepare (local) -> flood model (OSCAR) -> impact (local)"
doc: |
  One FloodAdapt-style scenario for one return period. The model step carries an oscar:Offload hint,
  the light steps say offload: false, so `oscar-cwl` (with --offload hinted or all) runs only the model
  on OSCAR. Plain cwltool ignores the hint and runs everything locally.
$namespaces:
  oscar: https://oscar-plugins.readthedocs.io/cwl#
inputs:
  return_period: {type: float, default: 100, doc: years}
  seed: {type: int, default: 42, doc: site seed}
  size: {type: int, default: 80, doc: cells per side of the 2 km x 2 km domain}
outputs:
  scenario: {type: File, outputSource: prepare/scenario}
  scenario_info: {type: File, outputSource: prepare/info}
  flood: {type: File, outputSource: model/flood}
  model_summary: {type: File, outputSource: model/summary}
  impact_table: {type: File, outputSource: impact/table}
  impact_summary: {type: File, outputSource: impact/impact}
  flood_map: {type: File, outputSource: impact/map}
steps:
  prepare:
    run: tools/prepare.cwl
    hints:
      oscar:Offload: {offload: false}
    in: {return_period: return_period, seed: seed, size: size}
    out: [scenario, info]
  model:
    run: tools/model.cwl
    in: {scenario: prepare/scenario}
    out: [flood, summary]
  impact:
    run: tools/impact.cwl
    hints:
      oscar:Offload: {offload: false}
    in: {scenario: prepare/scenario, flood: model/flood, summary: model/summary}
    out: [table, impact, map]
