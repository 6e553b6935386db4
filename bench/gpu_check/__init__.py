"""The Python half of scripts/gpu-check.sh: one GPU check in parts, each its own process (the shell script
runs them in turn, each under `timeout`), all writing into ONE JSON that is rewritten after every part and
every measurement, so that a part that fails or runs out of time loses no other part's numbers.

    python -m bench.gpu_check begin    --json OUT.json [--setup-how ... --setup-seconds S]
    python -m bench.gpu_check pipeline --json OUT.json --budget SECONDS
    python -m bench.gpu_check llama    --json OUT.json --budget SECONDS
    python -m bench.gpu_check note     --json OUT.json --part NAME --error TEXT
    python -m bench.gpu_check end      --json OUT.json

Parts, one module each:
- begin (machine.py): the machine (device name, memory, torch/CUDA versions) and what the set-up did;
- pipeline (pipeline.py, with pipeline_config.py and manifests.py): `safer run configs/smol.yaml` on the run
  device with SmolLM2 (data -> RM -> activations -> SAE -> features -> scores -> one edited set -> retrain ->
  evaluate -> causal test; the audit on request) in a child process; each stage's seconds and peak memory
  (GPU and resident) come from the run's manifests, where the runner records them;
- llama (llama.py, with llama_steps.py): a random-weight Llama-3.2-1B-shaped LlamaForSequenceClassification
  (num_labels=1), AdamW, the Bradley-Terry loss on pairs of 4,096-token sequences, with and without gradient
  checkpointing, in mixed precision (fp32 weights, bf16 autocast: what `rm.bf16: true` does through
  transformers.Trainer) and with bf16 weights: seconds per step, tokens/s and peak GPU memory (an
  out-of-memory is recorded, not raised);
- note and end (cli.py, beside the command line): a part's error written by the shell script, and the table.

The JSON itself is read and written by record.py; the environment is read by settings.py (see
scripts/gpu-check.sh): SAFER_GPU_CHECK_DEVICE (cuda, or cpu for the tiny mode that exists only so that
tests/test_gpu_check.py can run all of this here), SAFER_GPU_CHECK_QUICK, SAFER_GPU_CHECK_MODEL,
SAFER_GPU_CHECK_AUDIT, SAFER_GPU_CHECK_DATA, SAFER_GPU_CHECK_RUN_DIR, SAFER_GPU_CHECK_SET,
SAFER_GPU_CHECK_START (epoch seconds the whole check started at). Nothing heavy is imported at module level:
`note` and `end` run without torch.
"""
