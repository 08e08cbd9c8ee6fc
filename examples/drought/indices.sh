# OSCAR service script: SPI and SPEI of one tile per job (steps/indices.py does the work).
# Inputs: tile_NN.npz (prepare step) and indices.py, as the files of one job or together in one .tar.
# Outputs ($TMP_OUTPUT_DIR): indices_tile_NN.npz and summary_tile_NN.json. SPI_SCALE: window in months.
set -eu
dir="${OSCAR_INPUTS_DIR:-$(dirname "$INPUT_FILE_PATH")}"
case "$INPUT_FILE_PATH" in
  *.tar) dir=$(mktemp -d); tar -xf "$INPUT_FILE_PATH" -C "$dir" ;;
esac
if [ ! -f "$dir/indices.py" ]; then
  echo "no indices.py among the job's inputs: send examples/drought/steps/indices.py with the tile" >&2
  exit 2
fi
python3 "$dir/indices.py" "$dir"/tile_*.npz --scale "${SPI_SCALE:-3}" --out-dir "$TMP_OUTPUT_DIR"
