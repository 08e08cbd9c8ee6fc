cwlVersion: v1.2
class: CommandLineTool
doc: Upper-cases a word into <word>.txt (one output file per scatter branch, same name in every branch dir).
requirements:
  ShellCommandRequirement: {}
  InlineJavascriptRequirement: {}
inputs:
  word: string
arguments:
  - shellQuote: false
    valueFrom: printf '%s\n' "$(inputs.word)" | tr a-z A-Z > out.txt
outputs:
  out:
    type: File
    outputBinding: {glob: out.txt}
