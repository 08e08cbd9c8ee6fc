cwlVersion: v1.2
class: CommandLineTool
label: "Flood model: 2D local-inertial shallow-water inundation (Bates et al. 2010)"
doc: |
  The heavy step, offloaded to OSCAR (it stands where FloodAdapt runs SFINCS). numpy only; the script
  ships as a File input, so any image with python3 and numpy runs it.
$namespaces:
  oscar: https://oscar-plugins.readthedocs.io/cwl#
hints:
  DockerRequirement:
    dockerPull: quay.io/jupyter/scipy-notebook:2024-12-23
  ResourceRequirement: {coresMin: 1, ramMin: 1024}
  oscar:Offload:
    cpu: "1"
    memory: 1Gi
baseCommand: python3
inputs:
  script:
    type: File
    default: {class: File, location: ../steps/model.py}
    inputBinding: {position: 0}
  scenario:
    type: File
    inputBinding: {position: 1}
outputs:
  flood:
    type: File
    doc: "maximum and final depth, arrival time, maximum water level, hydrograph (.npz)"
    outputBinding: {glob: "flood_T*.npz"}
  summary:
    type: File
    doc: "flooded area, volume balance, steps, wall time (.json)"
    outputBinding: {glob: "flood_T*.json"}
