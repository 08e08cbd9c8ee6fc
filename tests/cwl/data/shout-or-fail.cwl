cwlVersion: v1.2
class: CommandLineTool
doc: Upper-cases a word into out.txt; the word "bad" makes it exit 3 (a branch that fails).
requirements:
  ShellCommandRequirement: {}
  InlineJavascriptRequirement: {}
inputs:
  word: string
arguments:
  - shellQuote: false
    valueFrom: test "$(inputs.word)" != bad || { echo "bad word" >&2; exit 3; }; printf '%s\n' "$(inputs.word)" | tr a-z A-Z > out.txt
outputs:
  out:
    type: File
    outputBinding: {glob: out.txt}
