cwlVersion: v1.2
class: CommandLineTool
doc: Writes to stdout and stderr; both captured, kept apart.
requirements:
  ShellCommandRequirement: {}
  InlineJavascriptRequirement: {}
inputs:
  text: string
arguments:
  - shellQuote: false
    valueFrom: echo "out:$(inputs.text)"; echo "err:$(inputs.text)" >&2; echo "cwd:$(runtime.outdir)" > where.txt; pwd >> where.txt
stdout: out.txt
stderr: err.txt
outputs:
  out: stdout
  err: stderr
  where:
    type: boolean
    outputBinding:
      glob: where.txt
      loadContents: true
      outputEval: $(self[0].contents.split("\n")[0] == "cwd:" + self[0].contents.split("\n")[1])
