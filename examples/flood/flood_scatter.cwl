cwlVersion: v1.2
class: Workflow
label: "DT-Flood: one scenario per return period, in parallel, then a comparison"
doc: |
  Scatters flood.cwl over the return periods: the model runs of all periods are on OSCAR at the same
  time; the comparison (flood extents, impact against return period, expected annual damage) is local.
$namespaces:
  oscar: https://oscar-plugins.readthedocs.io/cwl#
requirements:
  ScatterFeatureRequirement: {}
  SubworkflowFeatureRequirement: {}
  StepInputExpressionRequirement: {}
inputs:
  return_periods: {type: "float[]", default: [10, 50, 100], doc: years}
  seed: {type: int, default: 42, doc: site seed (one site for all periods)}
  size: {type: int, default: 80, doc: cells per side of the 2 km x 2 km domain}
outputs:
  flood_maps: {type: "File[]", outputSource: scenario/flood_map}
  impacts: {type: "File[]", outputSource: scenario/impact_summary}
  model_summaries: {type: "File[]", outputSource: scenario/model_summary}
  floods: {type: "File[]", outputSource: scenario/flood}
  scenarios: {type: "File[]", outputSource: scenario/scenario}
  comparison_plot: {type: File, outputSource: compare/plot}
  comparison_table: {type: File, outputSource: compare/table}
  comparison: {type: File, outputSource: compare/summary}
steps:
  scenario:
    run: flood.cwl
    scatter: return_period
    in: {return_period: return_periods, seed: seed, size: size}
    out: [scenario, flood, model_summary, impact_summary, flood_map]
  compare:
    run: tools/compare.cwl
    hints:
      oscar:Offload: {offload: false}
    in:
      scenario:
        source: scenario/scenario
        valueFrom: $(self[0])
      floods: scenario/flood
      impacts: scenario/impact_summary
    out: [plot, table, summary]
