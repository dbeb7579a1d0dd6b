# The image docker-compose.yml runs: Ray's own image plus this project and its runtime extras.
FROM rayproject/ray:2.60.0-py311
WORKDIR /home/ray/llm-braid
COPY --chown=ray:users . .
RUN pip install --no-cache-dir --constraint requirements.lock -e ".[ray,serve,memory,tools]"
