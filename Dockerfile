# syntax=docker/dockerfile:1
# The UltraVQA-Ray image: the project installed on the official Ray image of the release that
# pyproject.toml pins, in a CPU and a GPU (CUDA) variant. Every Ray node, RayJob submitter and
# Kafka-side Deployment in k8s/ runs this image.
#
#   docker build -t ultravqa-ray:2.60.0-py311 .                               # CPU
#   docker build --build-arg VARIANT=gpu -t ultravqa-ray:2.60.0-py311-gpu .   # GPU
#
# Tag the image with the tag of its base image: the manifests check that every image tag starts with
# their rayVersion (tests/k8s/test_image.py and test_consistency.py keep the FROM lines, the Ray pin
# and the manifests equal). No secret is baked in: credentials arrive as environment variables from
# Kubernetes Secrets at run time.
ARG VARIANT=cpu

# CPU: the CPU build of torch from constraints.txt.
FROM rayproject/ray:2.60.0-py311 AS base-cpu
ENV ULTRAVQA_CONSTRAINTS=constraints.txt \
    ULTRAVQA_TORCH_INDEX=""

# GPU: the CUDA build of the same torch release from constraints-gpu.txt.
FROM rayproject/ray:2.60.0-py311-gpu AS base-gpu
ENV ULTRAVQA_CONSTRAINTS=constraints-gpu.txt \
    ULTRAVQA_TORCH_INDEX=https://download.pytorch.org/whl/cu128

FROM base-${VARIANT}
WORKDIR /home/ray/ultravqa-ray

# The library first (a change to jobs/ or serve_configs/ does not reinstall it). The base image
# already holds ray[...]==2.60.0, which the pin keeps; the constraints file pins torch.
COPY --chown=ray:users pyproject.toml README.md constraints.txt constraints-gpu.txt ./
COPY --chown=ray:users connectors/ connectors/
COPY --chown=ray:users ultravqa_ray/ ultravqa_ray/
RUN pip install --no-cache-dir -c "${ULTRAVQA_CONSTRAINTS}" \
        ${ULTRAVQA_TORCH_INDEX:+--extra-index-url "${ULTRAVQA_TORCH_INDEX}"} . \
    && python -c "import ray, ultravqa_ray; assert ray.__version__ == '2.60.0', ray.__version__" \
    && ultravqa-ray --help > /dev/null

# Entry points of the RayJobs and the Serve configs (the RayService mirrors serve_configs/cluster.yaml).
COPY --chown=ray:users jobs/ jobs/
COPY --chown=ray:users serve_configs/ serve_configs/

# Any later pip install in this image (a Ray runtime_env, a notebook) keeps the same torch.
ENV PIP_CONSTRAINT=/home/ray/ultravqa-ray/${ULTRAVQA_CONSTRAINTS}
USER ray
