cwlVersion: v1.2
class: CommandLineTool
label: "Impact: buildings and people per depth class, damage, and the flood map"
hints:
  DockerRequirement:
    dockerPull: quay.io/jupyter/scipy-notebook:2024-12-23
  ResourceRequirement: {coresMin: 1, ramMin: 512}
baseCommand: python3
inputs:
  script:
    type: File
    default: {class: File, location: ../steps/impact.py}
    inputBinding: {position: 0}
  scenario:
    type: File
    inputBinding: {position: 1}
  flood:
    type: File
    inputBinding: {position: 2}
  summary:
    type: File
    inputBinding: {position: 3}
outputs:
  table:
    type: File
    outputBinding: {glob: "impact_T*.csv"}
  impact:
    type: File
    outputBinding: {glob: "impact_T*.json"}
  map:
    type: File
    outputBinding: {glob: "flood_map_T*.png"}
