set -u
ROOT=$(pwd); W=/root/w63; mkdir -p $W/m; cd $W
tar xzf $ROOT/devtmp/llama.cpp.tgz
python3 -m pip install -q --no-deps --target $W/site $ROOT/devtmp/gguf-0.19.0-py3-none-any.whl 2>&1 | tail -1
{ lscpu | grep -E "Model name|^CPU\(s\)|MHz|Model:" ; gcc --version | head -1; } > $OUT/lscpu.txt
cmake -S llama.cpp -B bn -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_CUDA=OFF -DCMAKE_BUILD_TYPE=Release > cmake-n.log 2>&1
cmake -S llama.cpp -B bi -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON -DLLAMA_CURL=OFF -DGGML_CUDA=OFF -DCMAKE_BUILD_TYPE=Release > cmake-i.log 2>&1
(cmake --build bn --target llama-bench llama-quantize -j8 > build-n.log 2>&1) &
(cmake --build bi --target llama-bench -j8 > build-i.log 2>&1) &
wait
test -x bn/bin/llama-bench && test -x bi/bin/llama-bench || { tail -5 build-n.log build-i.log; exit 1; }
echo "built $(date +%T)"
PYTHONPATH=$ROOT:$W/site python3 -c "
from pathlib import Path
from qwenctl.testing.models import gguf_model, qwen25_shape
print(gguf_model(Path('$W/m'), qwen25_shape('1.5B'), 'F16'))" > f16.txt || exit 1
F=$(cat f16.txt)
for q in Q4_K_M Q4_0 Q8_0 Q5_0 Q6_K Q3_K_M Q5_K_M; do bn/bin/llama-quantize $F m/1.5b-$q.gguf $q 16 > /dev/null 2>&1; done
echo "quantized $(date +%T)"
M=$(ls m/1.5b-*.gguf | paste -sd,)
timeout 130 bi/bin/llama-bench -m $M -p 0 -n 32 -r 2 -t 1 -o json > $OUT/decode-icelake-t1.json 2> $OUT/bench.err
echo "icelake $(date +%T)"
timeout 130 bn/bin/llama-bench -m $M -p 0 -n 32 -r 2 -t 1 --repack 1 -o json > $OUT/decode-native-t1.json 2>> $OUT/bench.err
echo "native $(date +%T)"
timeout 130 bn/bin/llama-bench -m $M -p 0 -n 32 -r 2 -t 1 --repack 0 -o json > $OUT/decode-native-norepack-t1.json 2>> $OUT/bench.err
echo "norepack $(date +%T)"
timeout 90 bn/bin/llama-bench -m $M -p 512 -n 0 -r 3 -t 16 -o json > $OUT/prompt-native-t16.json 2>> $OUT/bench.err
echo "done $(date +%T)"
