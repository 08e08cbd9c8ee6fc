cwlVersion: v1.2
class: Workflow
doc: A scatter whose tool asks for its branches to be batched (oscar:Offload batch), some of which may fail.
$namespaces:
  oscar: https://oscar-plugins.readthedocs.io/cwl#
requirements:
  ScatterFeatureRequirement: {}
inputs:
  items: string[]
outputs:
  results:
    type: File[]
    outputSource: shout/out
steps:
  shout:
    run: shout-or-fail.cwl
    hints:
      oscar:Offload:
        batch: 3
    scatter: word
    in: {word: items}
    out: [out]
