cwlVersion: v1.2
class: CommandLineTool
label: "Drought-warning map (PNG), summary table (CSV), report and physical checks"
doc: |
  Light step, run locally (numpy and matplotlib). Prints the table and the checks; fails (exit 1) when a
  physical check fails.
hints:
  DockerRequirement:
    dockerPull: quay.io/jupyter/scipy-notebook:2024-12-23
  ResourceRequirement: {coresMin: 1, ramMin: 1024}
requirements:
  EnvVarRequirement:
    envDef:
      MPLCONFIGDIR: $(runtime.tmpdir)
  InlineJavascriptRequirement: {}
baseCommand: python3
inputs:
  script:
    type: File
    default: {class: File, location: ../steps/warning_map.py}
    inputBinding: {position: 0}
  region:
    type: File
    inputBinding: {prefix: --region, position: 1}
  forecast:
    type: File
    inputBinding: {prefix: --forecast, position: 2}
  forecast_summary:
    type: File
    inputBinding: {position: 3}
  indices:
    type: File[]
    inputBinding: {prefix: --indices, position: 4}
  summaries:
    type: File[]
    inputBinding: {position: 5}
outputs:
  map:
    type: File
    outputBinding: {glob: drought_warning.png}
  table:
    type: File
    outputBinding: {glob: drought_summary.csv}
  report:
    type: File
    doc: "per-tile results, warning shares, forecast skill, checks, run time"
    outputBinding: {glob: report.json}
