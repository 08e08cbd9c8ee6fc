cwlVersion: v1.2
class: Workflow
doc: A local step preparing a file for an offloaded step (the provenance tests' workflow).
$namespaces:
  oscar: https://oscar-plugins.readthedocs.io/cwl#
inputs:
  file: File
outputs:
  out:
    type: File
    outputSource: heavy/out
steps:
  prepare:
    run:
      class: CommandLineTool
      hints:
        oscar:Offload: {offload: false}
      baseCommand: [sort]
      stdout: sorted.txt
      inputs:
        file: {type: File, inputBinding: {position: 1}}
      outputs:
        sorted: {type: stdout}
    in: {file: file}
    out: [sorted]
  heavy:
    run:
      class: CommandLineTool
      hints:
        oscar:Offload: {cpu: "0.5", memory: 128Mi}
      baseCommand: [tr, a-z, A-Z]
      stdin: $(inputs.file.path)
      stdout: upper.txt
      inputs:
        file: File
      outputs:
        out: {type: stdout}
    in: {file: prepare/sorted}
    out: [out]
