cwlVersion: v1.2
class: CommandLineTool
label: "Drought indices of one tile: SPI and SPEI (gamma and log-logistic fits on the reference period)"
doc: |
  Offloaded to OSCAR (one job per tile when scattered). numpy and scipy only; the script ships as a File
  input, so any image with python3, numpy and scipy runs it.
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
    default: {class: File, location: ../steps/indices.py}
    inputBinding: {position: 0}
  tile:
    type: File
    inputBinding: {position: 1}
  scale:
    type: int
    default: 3
    doc: accumulation window in months (1, 3, 6, 12)
    inputBinding: {prefix: --scale, position: 2}
outputs:
  indices:
    type: File
    doc: "indices_tile_NN.npz: spi, spei (scale), spi1, spei1, pet, tanom as (months, y, x)"
    outputBinding: {glob: "indices_*.npz"}
  summary:
    type: File
    doc: "summary_tile_NN.json: latest month, reference-period statistics per cell, timings"
    outputBinding: {glob: "summary_*.json"}
