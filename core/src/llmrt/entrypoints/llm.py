"""``LLM``: the offline batch API, a drop-in for vLLM's ``LLM`` class."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from llmrt.config import CacheConfig, EngineConfig, ModelConfig, SchedulerConfig
from llmrt.engine.llm_engine import LLMEngine
from llmrt.outputs import RequestOutput
from llmrt.plugins import get_plugin_host
from llmrt.sampling_params import SamplingParams

logger = logging.getLogger("llmrt")

PromptType = str | list[int] | dict[str, Any]

# vLLM engine arguments that are accepted and mean nothing different here (world size 1).
_IGNORED_VLLM_ARGS = {"tensor_parallel_size": 1, "pipeline_parallel_size": 1, "disable_log_stats": None,
                      "cpu_offload_gb": 0}
GIB = 1 << 30


class NoModelError(ValueError):
    """No model was given and no installed plugin offers a default one."""


def default_model() -> str:
    """The model used when none is named (the shipped demo model, when installed)."""
    model = get_plugin_host().default_model()
    if model is None:
        raise NoModelError("no model given, and no default model is installed; name a model folder or "
                           "hub id, or install the demo model (pip install ./demo_model)")
    return model


class LLM:
    """Generate from a model with an in-process engine.

    ``LLM(model=..., backend=..., dtype=..., max_model_len=..., seed=...)`` then
    ``llm.generate(prompts, sampling_params)`` or ``llm.chat(messages)``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        tokenizer: str | None = None,
        backend: str | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        seed: int = 0,
        revision: str | None = None,
        trust_remote_code: bool = False,
        quantization: str | None = None,
        block_size: int | None = None,
        enable_prefix_caching: bool = True,
        max_num_batched_tokens: int | None = None,
        max_num_seqs: int = 256,
        kv_cache_memory: int | None = None,
        gpu_memory_utilization: float = 0.9,
        num_gpu_blocks_override: int | None = None,
        scheduling_policy: str = "fcfs",
        preemption_mode: str = "recompute",
        swap_space: float = 0,
        attention_backend: str | None = None,
        num_threads: int | None = None,
        enforce_eager: bool = False,
        generation_config: str = "auto",
        async_scheduling: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if trust_remote_code:
            raise ValueError("trust_remote_code is not supported: llmrt runs only its own model code")
        for name, value in kwargs.items():
            if name not in _IGNORED_VLLM_ARGS:
                raise TypeError(f"LLM() got an unexpected keyword argument {name!r}")
            if _IGNORED_VLLM_ARGS[name] is not None and value != _IGNORED_VLLM_ARGS[name]:
                raise ValueError(f"{name}={value!r} is not supported yet (only {_IGNORED_VLLM_ARGS[name]!r})")
        config = EngineConfig(
            model=ModelConfig(model=model or default_model(), tokenizer=tokenizer, revision=revision,
                              dtype=dtype, max_model_len=max_model_len, seed=seed,
                              quantization=quantization, generation_config=generation_config),
            cache=CacheConfig(block_size=block_size, enable_prefix_caching=enable_prefix_caching,
                              kv_cache_bytes=kv_cache_memory, memory_fraction=gpu_memory_utilization,
                              num_blocks_override=num_gpu_blocks_override,
                              swap_space_bytes=int(swap_space * GIB)),
            scheduler=SchedulerConfig(max_num_seqs=max_num_seqs, policy=scheduling_policy,
                                      preemption_mode=preemption_mode,
                                      **({"max_num_batched_tokens": max_num_batched_tokens}
                                         if max_num_batched_tokens else {})),
            backend=backend,
            attention_backend=attention_backend,
            num_threads=num_threads,
            enforce_eager=enforce_eager,
            async_scheduling=async_scheduling,
        )
        self._engine: LLMEngine | None = LLMEngine(config)

    @property
    def llm_engine(self) -> LLMEngine:
        """The engine; raises once :meth:`close` was called."""
        if self._engine is None:
            raise RuntimeError("this LLM is closed")
        return self._engine

    def close(self) -> None:
        """Stop the engine and free its memory now (the KV cache; on a GPU, the captured graphs)
        rather than whenever the garbage collector reaches it. Later calls raise; closing twice
        is harmless. ``with LLM(...) as llm:`` closes at the end of the block."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown("closed")

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_tokenizer(self) -> Any:
        """The model's tokenizer (a transformers tokenizer)."""
        return self.llm_engine.tokenizer

    def generate(
        self,
        prompts: PromptType | Sequence[PromptType],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        use_tqdm: bool = True,
        priority: list[int] | None = None,
    ) -> list[RequestOutput]:
        """Complete every prompt; outputs come back in the order of ``prompts``."""
        prompt_list = _as_prompt_list(prompts)
        params_list = _broadcast(sampling_params, len(prompt_list))
        ids = self._add_all(prompt_list, params_list, priority)
        return self._run(ids, use_tqdm)

    def chat(
        self,
        messages: list[dict[str, Any]] | list[list[dict[str, Any]]],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        use_tqdm: bool = True,
        chat_template: str | None = None,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        chat_template_kwargs: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> list[RequestOutput]:
        """Render each conversation with the chat template, then generate."""
        conversations = messages if messages and isinstance(messages[0], list) else [messages]
        tokenizer = self.get_tokenizer()
        prompts: list[PromptType] = []
        for conversation in conversations:
            token_ids = tokenizer.apply_chat_template(
                conversation, chat_template=chat_template, tools=tools, tokenize=True,
                add_generation_prompt=add_generation_prompt and not continue_final_message,
                continue_final_message=continue_final_message, **(chat_template_kwargs or {}))
            if isinstance(token_ids, dict):  # transformers 5 returns a BatchEncoding
                token_ids = token_ids["input_ids"]
            prompts.append({"prompt_token_ids": list(token_ids)})
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm)

    def _add_all(self, prompts: list[PromptType], params: list[SamplingParams],
                 priority: list[int] | None) -> list[str]:
        engine = self.llm_engine
        ids: list[str] = []
        try:
            for index, (prompt, param) in enumerate(zip(prompts, params)):
                request_id = engine.next_request_id()
                engine.add_request(request_id, prompt, param, priority=priority[index] if priority else 0)
                ids.append(request_id)
        except Exception:
            engine.abort_request(ids)
            raise
        return ids

    def _run(self, ids: list[str], use_tqdm: bool) -> list[RequestOutput]:
        engine = self.llm_engine
        finished: dict[str, RequestOutput] = {}
        bar = tqdm(total=len(ids), desc="Processed prompts", unit="req", disable=not use_tqdm)
        generated = 0
        with bar:
            while engine.has_unfinished_requests():
                for output in engine.step(finished_only=True):
                    if output.finished:
                        finished[output.request_id] = output
                        generated += sum(len(o.token_ids) for o in output.outputs)
                        bar.update(1)
                        bar.set_postfix_str(f"output {generated / max(bar.format_dict['elapsed'], 1e-9):.1f} tok/s")
        return [finished[i] for i in ids]


def _as_prompt_list(prompts: PromptType | Sequence[PromptType]) -> list[PromptType]:
    if isinstance(prompts, (str, dict)):
        return [prompts]
    prompts = list(prompts)
    if prompts and all(isinstance(p, int) for p in prompts):
        return [prompts]  # a single list of token ids
    return prompts


def _broadcast(params: SamplingParams | Sequence[SamplingParams] | None, count: int) -> list[SamplingParams]:
    if params is None:
        return [SamplingParams.from_optional() for _ in range(count)]
    if isinstance(params, SamplingParams):
        return [params] * count
    params = list(params)
    if len(params) != count:
        raise ValueError(f"got {len(params)} sampling params for {count} prompts")
    return params
