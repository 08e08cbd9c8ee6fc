cwlVersion: v1.2
class: CommandLineTool
label: "Prepare: synthetic Alpine monthly precipitation and temperature, split into tiles"
doc: |
  Light step, run locally (it stands where EURAC's workflow reads E-OBS-like gridded observations). The
  script ships as a File input, so the step runs wherever python3 with numpy and scipy exists.
hints:
  DockerRequirement:
    dockerPull: quay.io/jupyter/scipy-notebook:2024-12-23
  ResourceRequirement: {coresMin: 1, ramMin: 512}
baseCommand: python3
inputs:
  script:
    type: File
    default: {class: File, location: ../steps/climate.py}
    inputBinding: {position: 0}
  tiles: {type: int, default: 6, inputBinding: {prefix: --tiles, position: 1}}
  tile_size: {type: int, default: 20, doc: 5 km cells per tile side, inputBinding: {prefix: --tile-size, position: 1}}
  years: {type: int, default: 35, doc: of monthly data from January 1991, inputBinding: {prefix: --years, position: 1}}
  end_month: {type: int, default: 8, doc: last month of the record (1-12), inputBinding: {prefix: --end-month, position: 1}}
  seed: {type: int, default: 7, inputBinding: {prefix: --seed, position: 1}}
outputs:
  tiles:
    type: File[]
    doc: "tile_NN.npz: precip (mm), tavg (degC) as (months, y, x), elevation, lat, lon, dates, reference period"
    outputBinding: {glob: "tile_*.npz"}
  region:
    type: File
    doc: "region.json: layout, dates, reference period, start time"
    outputBinding: {glob: region.json}
