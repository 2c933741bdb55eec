# Hugging Face Docker Space for the Streamlit app (README front matter: sdk: docker, app_port: 8501).
# Every step is mirrored by docs/spaces/check_space_install.sh, which CI-style checks the same
# install commands in a fresh virtual environment (no Docker engine is available there).
FROM python:3.11-slim

# Chromium + fonts: kaleido's static figure export (PDF/SVG/PNG downloads).
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation \
    && rm -rf /var/lib/apt/lists/*

# Spaces run containers as user 1000.
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
WORKDIR /home/user/app

# CPU-only PyTorch keeps the image small and the start-up fast on a free CPU Space; the app then
# runs on the CPU (crmn_viz.devices picks CUDA only where PyTorch sees a GPU). GPU Spaces: README.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --user torch torchvision --index-url ${TORCH_INDEX}

COPY --chown=user . /home/user/app
RUN pip install --no-cache-dir --user ".[app]"
# The MTCNN face detector (its weights ship in the wheel); --no-deps because its metadata pins
# torch < 2.3 and numpy < 2, while it runs on the versions installed above (scripts/setup.sh).
RUN pip install --no-cache-dir --user --no-deps facenet-pytorch==2.6.0

EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true"]
