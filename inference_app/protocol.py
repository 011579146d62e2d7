"""OpenAI chat-completions wire format (the subset this server speaks).

Requests: each rule is one validator whose error names the field, so the 400 answer can say
``param: "temperature"``. Unknown request fields are ignored, as the OpenAI SDK sends some
(``user``, ``frequency_penalty`` ...) that change nothing here. Numbers and booleans are strict
(issue 12): ``max_tokens: true`` or ``"10"`` is a 400 naming the field, not a quiet conversion;
an integer is still a valid float. Text fields refuse lone surrogates (``"\\ud800"``, valid JSON
but not Unicode), which no tokenizer or UTF-8 response can carry.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, field_validator

MAX_STOP_SEQUENCES = 4
# OpenAI's own limit. Checked before the messages are validated one by one: validating tens of
# thousands of tiny messages (a 1 MB body) took a third of a second of the event loop (issue 12).
MAX_MESSAGES = 2048


def unicode_text(value: str) -> str:
    """``value`` if it is encodable Unicode; else ``ValueError`` saying where the lone surrogate is."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"contains a lone surrogate (\\u{ord(value[e.start]):04x}) at character {e.start}: "
                         "text must be valid Unicode; send the character's full surrogate pair or drop it") from None
    return value


Text = Annotated[str, AfterValidator(unicode_text)]
StrictInt = Annotated[int, Strict()]
StrictFloat = Annotated[float, Strict()]  # an int is accepted too; a bool or a string is not
StrictBool = Annotated[bool, Strict()]


class SamplingFields(BaseModel):
    """Decoding fields shared by the OpenAI route and the Gradio UI; ``None`` = server default."""

    model_config = ConfigDict(extra="ignore")

    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    temperature: StrictFloat | None = None
    top_p: StrictFloat | None = None
    top_k: StrictInt | None = None  # extension (vLLM and TGI accept it too)
    seed: StrictInt | None = None
    stop: list[Text] | None = None
    ignore_eos: StrictBool | None = None  # extension (as vLLM): generate exactly max_tokens, for benchmarks

    @field_validator("max_tokens", "max_completion_tokens")
    @classmethod
    def _positive_tokens(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("temperature")
    @classmethod
    def _temperature_range(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 2:
            raise ValueError("must be between 0 and 2 (0 means greedy decoding)")
        return v

    @field_validator("top_p")
    @classmethod
    def _top_p_range(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= 1:
            raise ValueError("must be greater than 0 and at most 1")
        return v

    @field_validator("top_k")
    @classmethod
    def _top_k_range(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError("must be 0 (off) or a positive integer")
        return v

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list) and len(v) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        return v


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Text = ""

    @field_validator("content", mode="before")
    @classmethod
    def _content_is_text(cls, v: Any) -> Any:
        """A string, ``None`` (assistant turns), or a list of ``{"type": "text", "text": ...}`` parts."""
        if v is None:
            return ""
        if isinstance(v, list):
            texts = []
            for i, part in enumerate(v):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise ValueError(f'part {i}: only {{"type": "text", "text": "..."}} parts are supported')
                texts.append(part["text"])
            return "".join(texts)
        return v


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatCompletionRequest(SamplingFields):
    model: Text
    messages: list[ChatMessage]
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: StrictInt = 1

    @field_validator("messages", mode="before")
    @classmethod
    def _messages_count(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("must contain at least one message")
        if isinstance(v, list) and len(v) > MAX_MESSAGES:
            raise ValueError(f"at most {MAX_MESSAGES} messages, got {len(v)}")
        return v

    @field_validator("n")
    @classmethod
    def _single_choice(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only n=1 is supported")
        return v


# ----- responses -------------------------------------------------------------------------------
def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    note: str | None = Field(None, description="extension: why a server limit ended the answer, when one did")


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    note: str | None = Field(None, description="extension, on the chunk with finish_reason: as ChatCompletion.note")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=now)
    owned_by: str = "aitk-nb"
    root: str | None = None  # the base model id, for adapters and base alike
    parent: str | None = None  # "base" for adapters
    max_model_len: int | None = None  # context window, prompt + answer (as vLLM reports it)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
