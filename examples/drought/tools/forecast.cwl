cwlVersion: v1.2
class: CommandLineTool
label: "Surrogate forecaster: ridge regression of next month's SPI and SPEI, trained on all tiles"
doc: |
  Offloaded to OSCAR (it stands where EURAC trains and runs the hython LSTM). numpy only; the script ships
  as a File input.
$namespaces:
  oscar: https://oscar-plugins.readthedocs.io/cwl#
hints:
  DockerRequirement:
    dockerPull: quay.io/jupyter/scipy-notebook:2024-12-23
  ResourceRequirement: {coresMin: 1, ramMin: 2048}
  oscar:Offload:
    cpu: "1"
    memory: 2Gi
baseCommand: python3
inputs:
  script:
    type: File
    default: {class: File, location: ../steps/forecast.py}
    inputBinding: {position: 0}
  indices:
    type: File[]
    inputBinding: {position: 1}
outputs:
  forecast:
    type: File
    doc: "forecast.npz: spi_next_<tile>, spei_next_<tile>"
    outputBinding: {glob: forecast.npz}
  summary:
    type: File
    doc: "forecast.json: skill against persistence and climatology, coefficients, periods, timings"
    outputBinding: {glob: forecast.json}
