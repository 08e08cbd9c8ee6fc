cwlVersion: v1.2
class: CommandLineTool
requirements:
  InlineJavascriptRequirement: {}
  EnvVarRequirement:
    envDef:
      GREETING: hello $(inputs.name)
      LITERAL: "a 'quoted' value with $dollar and \\backslash"
inputs:
  name: string
baseCommand: [sh, -c, 'echo "$GREETING"; echo "$LITERAL"; test "$HOME" = "$PWD" && echo home-ok; test -d "$TMPDIR" && echo tmp-ok']
stdout: env.txt
outputs:
  out: stdout
