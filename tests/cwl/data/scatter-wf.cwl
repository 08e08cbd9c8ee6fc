cwlVersion: v1.2
class: Workflow
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
    run: shout.cwl
    scatter: word
    in: {word: items}
    out: [out]
