# edgemtl for x86-64 GPU hosts: CUDA, cuDNN, TensorRT and a CUDA build of PyTorch
# come from NVIDIA's NGC PyTorch image; edgemtl and its remaining dependencies
# are installed on top without replacing the image's torch, numpy or TensorRT.
#
#   docker build -t edgemtl .
#   docker run --gpus all --rm --ipc=host -v "$PWD:/work" edgemtl train recipes/synthetic.yaml
#   docker run --gpus all --rm --ipc=host -v "$PWD:/work" edgemtl profile export/synthetic-student
#
# Multi-GPU: --entrypoint torchrun ... --nproc-per-node 4 -m edgemtl train RECIPE.
# Jetson (aarch64, JetPack): see docs/deploy.md, which uses an L4T base instead.
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.01-py3
FROM ${BASE_IMAGE}

# onnxruntime-gpu replaces the CPU onnxruntime of the base install (same module name).
ARG ORT_GPU_VERSION=1.20.1

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

WORKDIR /opt/edgemtl
COPY pyproject.toml README.md ./
COPY edgemtl ./edgemtl
COPY recipes ./recipes

# keep.txt pins the image's own builds so pip cannot swap in a PyPI wheel.
RUN pip list --format=freeze | grep -iE '^(torch|torchvision|tensorrt|numpy)==' > /opt/edgemtl/keep.txt \
 && pip install --constraint /opt/edgemtl/keep.txt ".[train,tensorrt]" \
 && pip uninstall --yes onnxruntime \
 && pip install --constraint /opt/edgemtl/keep.txt "onnxruntime-gpu==${ORT_GPU_VERSION}" \
 && python -c "import edgemtl, tensorrt, torch; print('edgemtl', edgemtl.__version__, 'torch', torch.__version__, 'tensorrt', tensorrt.__version__)"

WORKDIR /work
ENTRYPOINT ["edgemtl"]
CMD ["--help"]
