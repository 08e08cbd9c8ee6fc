cwlVersion: v1.2
class: CommandLineTool
doc: Takes a directory, lists it, emits a new directory with an empty subdirectory and a symlink.
requirements:
  ShellCommandRequirement: {}
inputs:
  dir: Directory
arguments:
  - shellQuote: false
    valueFrom: >
      mkdir -p result/empty && (cd $(inputs.dir.path) && find . -type f | sort) > result/listing.txt &&
      ln -s listing.txt result/link.txt && cp -r $(inputs.dir.path) result/copy
outputs:
  result:
    type: Directory
    outputBinding: {glob: result}
