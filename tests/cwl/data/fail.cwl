cwlVersion: v1.2
class: CommandLineTool
doc: Exits with the given code; 3 is a permanent failure, 5 counts as success.
inputs:
  code: int
baseCommand: [sh, -c, 'echo exiting >&2; exit $0']
arguments: [$(inputs.code)]
successCodes: [0, 5]
permanentFailCodes: [3]
outputs: []
