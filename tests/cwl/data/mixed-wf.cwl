cwlVersion: v1.2
class: Workflow
doc: A light local ExpressionTool feeding a heavy step marked for OSCAR (run with --offload hinted).
$namespaces:
  oscar: https://oscar-plugins.readthedocs.io/cwl#
requirements:
  InlineJavascriptRequirement: {}
inputs:
  name: string
outputs:
  out:
    type: File
    outputSource: heavy/out
steps:
  light:
    run:
      class: ExpressionTool
      inputs: {name: string}
      outputs: {word: string}
      expression: '$({"word": inputs.name + "-prepared"})'
    in: {name: name}
    out: [word]
  heavy:
    run: shout.cwl
    hints:
      oscar:Offload:
        cpu: "0.5"
        memory: 128Mi
    in: {word: light/word}
    out: [out]
