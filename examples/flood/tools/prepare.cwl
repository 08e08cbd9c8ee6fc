cwlVersion: v1.2
class: CommandLineTool
label: "Prepare a coastal flood scenario (DEM, buildings, storm tide and rainfall of return period T)"
doc: |
  Light step, run locally: a synthetic coastal site from a seed and the event of one return period.
  The step's script ships as a File input, so the step runs wherever python3 with numpy exists.
hints:
  DockerRequirement:
    dockerPull: quay.io/jupyter/scipy-notebook:2024-12-23
  ResourceRequirement: {coresMin: 1, ramMin: 512}
baseCommand: python3
inputs:
  script:
    type: File
    default: {class: File, location: ../steps/prepare.py}
    inputBinding: {position: 0}
  return_period:
    type: float
    doc: years
    inputBinding: {prefix: --return-period, position: 1}
  seed:
    type: int
    default: 42
    inputBinding: {prefix: --seed, position: 1}
  size:
    type: int
    default: 80
    doc: cells per side of the 2 km x 2 km domain
    inputBinding: {prefix: --size, position: 1}
outputs:
  scenario:
    type: File
    outputBinding: {glob: "scenario_T*.npz"}
  info:
    type: File
    outputBinding: {glob: "scenario_T*.json"}
