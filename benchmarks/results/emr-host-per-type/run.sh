set -u
ROOT=$(pwd); W=/root/w61; mkdir -p $W/m; cd $W
tar xzf $ROOT/devtmp/llama.cpp.tgz
python3 -m pip install -q --no-deps --target $W/site $ROOT/devtmp/gguf-0.19.0-py3-none-any.whl 2>&1 | tail -1
lscpu | grep -E "Model name|^CPU\(s\)|MHz" > $OUT/lscpu.txt
cmake -S llama.cpp -B build -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON -DLLAMA_CURL=OFF -DGGML_CUDA=OFF -DCMAKE_BUILD_TYPE=Release > cmake.log 2>&1
cmake --build build --target llama-bench llama-quantize -j16 > build.log 2>&1 || { tail -20 build.log; exit 1; }
echo "built $(date +%T)"
for size in 1.5B 0.5B; do
  PYTHONPATH=$ROOT:$W/site python3 -c "
from pathlib import Path
from qwenctl.testing.models import gguf_model, qwen25_shape
print(gguf_model(Path('$W/m'), qwen25_shape('$size'), 'F16'))" > f16-$size.txt || exit 1
done
echo "f16 $(date +%T)"
F15=$(cat f16-1.5B.txt); F05=$(cat f16-0.5B.txt)
for q in Q4_K_M Q5_0 Q8_0 Q5_K_M Q3_K_M Q6_K Q4_0; do build/bin/llama-quantize $F15 m/1.5b-$q.gguf $q 16 > /dev/null 2>&1; done
for q in Q4_K_M Q5_K_M; do build/bin/llama-quantize $F05 m/0.5b-$q.gguf $q 16 > /dev/null 2>&1; done
ls -la m > $OUT/models.txt; echo "quantized $(date +%T)"
M=$(ls m/1.5b-*.gguf m/0.5b-*.gguf | paste -sd,)
build/bin/llama-bench -m $M -p 0 -n 32 -r 2 -t 1,4 -o json > $OUT/decode-types.json 2> $OUT/bench.err
echo "decode $(date +%T)"
build/bin/llama-bench -m m/0.5b-Q4_K_M.gguf,m/0.5b-Q5_K_M.gguf,m/1.5b-Q4_K_M.gguf,m/1.5b-Q5_0.gguf -p 512 -n 0 -r 2 -t 4 -o json > $OUT/prompt-types.json 2>> $OUT/bench.err
echo "done $(date +%T)"
