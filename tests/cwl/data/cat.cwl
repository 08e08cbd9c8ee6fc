cwlVersion: v1.2
class: CommandLineTool
inputs:
  file:
    type: File
    inputBinding: {position: 1}
baseCommand: cat
stdout: copy.txt
outputs:
  out: stdout
