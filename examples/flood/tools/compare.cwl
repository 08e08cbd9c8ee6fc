cwlVersion: v1.2
class: CommandLineTool
label: "Compare return periods: flood extents, impact curves, expected annual damage"
hints:
  DockerRequirement:
    dockerPull: quay.io/jupyter/scipy-notebook:2024-12-23
  ResourceRequirement: {coresMin: 1, ramMin: 512}
baseCommand: python3
inputs:
  script:
    type: File
    default: {class: File, location: ../steps/compare.py}
    inputBinding: {position: 0}
  scenario:
    type: File
    doc: one scenario of the site (its DEM is the map's background)
    inputBinding: {prefix: --scenario, position: 1}
  floods:
    type: File[]
    inputBinding: {prefix: --flood, position: 2}
  impacts:
    type: File[]
    inputBinding: {prefix: --impact, position: 3}
outputs:
  plot:
    type: File
    outputBinding: {glob: comparison.png}
  table:
    type: File
    outputBinding: {glob: comparison.csv}
  summary:
    type: File
    outputBinding: {glob: comparison.json}
