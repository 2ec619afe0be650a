FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CSMS_VAR_DIR=/app/var
WORKDIR /app
# The runtime only; the test and benchmark tools (requirements-dev.txt) stay out of the image.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DJANGO_SECRET_KEY=build python manage.py collectstatic --noinput
# Bytecode in the image (PYTHONDONTWRITEBYTECODE keeps the workers from writing it, and /app is not
# theirs): without it every worker compiles the application at every start (scripts/serve.py).
RUN python -m compileall -q -x '/tests/' .
RUN useradd --system csms && mkdir -p /app/var/files && chown -R csms /app/var
USER csms
EXPOSE 8000
# Behind Caddy: take the charger's address from X-Forwarded-For (per-address handshake limits, logs).
ENV HOST=0.0.0.0 PORT=8000
CMD ["python", "scripts/serve.py", "--production", "--", "--proxy-headers"]
