cwlVersion: v1.2
class: CommandLineTool
requirements:
  InlineJavascriptRequirement: {}
  InitialWorkDirRequirement:
    listing:
      - entryname: $(inputs.name).conf
        entry: |
          name=$(inputs.name)
          count=$(inputs.count * 2)
      - entryname: data/input.txt
        entry: $(inputs.data)
      - entry: $(inputs.extra)
        entryname: writable.txt
        writable: true
inputs:
  name: string
  count: int
  data: File
  extra: File
baseCommand: [sh, -c, 'cat "$0.conf" data/input.txt; echo appended >> writable.txt']
arguments: [$(inputs.name)]
stdout: iwd.txt
outputs:
  out: stdout
  conf:
    type: File
    outputBinding: {glob: $(inputs.name).conf}
  writable:
    type: File
    outputBinding: {glob: writable.txt}
