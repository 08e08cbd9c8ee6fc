cat "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/out.txt"
