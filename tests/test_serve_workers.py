"""`qwenctl serve --workers`: the model spread over two real `qwenctl worker` processes; a worker killed while a
reply streams ends that reply with an error and every later request with a 503 (and /health too), and the server keeps answering."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from rpc_helpers import needs_rpc, workers
from serve_helpers import start

NO_EOS = {"1280": -100, "1281": -100, "1282": -100}  # the tiny vocabulary's specials: the reply never ends by itself


@needs_rpc
@pytest.mark.slow
def test_a_lost_worker_fails_requests_and_the_server_keeps_answering(model_cache):
    import openai

    from qwenctl.testing import models

    model = models.tiny_gguf(model_cache)
    with workers(2) as started:
        endpoints = [f"127.0.0.1:{port}" for _, port in started]
        server = start(model, "--ctx", "4096", "--workers", ",".join(endpoints))
        try:
            assert "layer split over workers" in (server.info.get("split") or "")
            client = server.client()
            ask = dict(model=server.model_id, messages=[{"role": "user", "content": "Hi"}], temperature=0)
            assert client.chat.completions.create(**ask, max_tokens=4).choices[0].message.content  # served over the workers

            stream = client.chat.completions.create(**ask, max_tokens=3000, stream=True, logit_bias=NO_EOS)
            pieces = 0
            with pytest.raises(openai.APIError, match="lost (an )?RPC worker"):  # the reply in flight ends with an error, not a hang
                for _ in stream:
                    pieces += 1
                    if pieces == 5:
                        started[1][0].kill()  # kill -9 a worker mid-reply
            assert pieces >= 5

            t0 = time.monotonic()
            with pytest.raises(openai.APIStatusError) as e:
                client.chat.completions.create(**ask, max_tokens=4)
            assert e.value.status_code == 503 and "RPC worker" in str(e.value) and "lost" in str(e.value)
            assert endpoints[1] in str(e.value)
            assert time.monotonic() - t0 < 10  # answered, not queued behind the dead engine
            assert client.models.list().data[0].id == server.model_id  # the rest of the API still answers
            with pytest.raises(urllib.error.HTTPError) as health:  # and a supervisor's health check sees it
                urllib.request.urlopen(server.base_url.removesuffix("/v1") + "/health", timeout=10)
            assert health.value.code == 503 and "lost" in json.loads(health.value.read())["error"]
            assert server.proc.poll() is None
        finally:
            server.stop()
