cwlVersion: v1.2
class: Workflow
doc: Two offloaded tools with different resources, so two runner services; the second starts late.
inputs:
  items: string[]
outputs:
  shouted:
    type: File[]
    outputSource: shout/out
  counted:
    type: File
    outputSource: count/out
requirements:
  ScatterFeatureRequirement: {}
steps:
  shout:
    run: shout.cwl
    scatter: word
    in: {word: items}
    out: [out]
  count:
    run:
      class: CommandLineTool
      requirements:
        ResourceRequirement: {coresMin: 0.5, ramMin: 300}
      baseCommand: [wc, -l]
      stdout: count.txt
      inputs:
        files: {type: "File[]", inputBinding: {position: 1}}
      outputs:
        out: {type: stdout}
    in: {files: shout/out}
    out: [out]
