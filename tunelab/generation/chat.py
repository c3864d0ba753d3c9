"""`tunelab chat`: talk to a run or model in the terminal, token by token.

Generation runs in a thread and hands text to the terminal through transformers'
TextIteratorStreamer, so the first words show while the rest is still being computed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HELP = "commands: /reset (forget the conversation), /system TEXT (set the system prompt), /exit"


@dataclass
class ChatSession:
    """A conversation with one model: history, system prompt and sampling settings."""

    model: Any
    tokenizer: Any
    system: str | None = None
    max_new_tokens: int = 256
    temperature: float = 0.0  # greedy by default: the same question gets the same answer
    top_p: float = 1.0
    history: list[dict[str, str]] = field(default_factory=list)

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history

    def reset(self) -> None:
        self.history.clear()

    def set_system(self, text: str) -> None:
        """Replace the system prompt; the conversation so far is kept."""
        self.system = text.strip() or None

    def reply(self, text: str, on_text: Callable[[str], None] | None = None) -> str:
        """Add the user's `text`, generate the answer (streamed to `on_text`), keep both in history."""
        from transformers import TextIteratorStreamer

        from tunelab.generation.engine import build_prompt

        self.history.append({"role": "user", "content": text})
        ids = build_prompt(self.tokenizer, self.messages(), None)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []
        worker = threading.Thread(target=self._generate, args=(ids, streamer, failure), daemon=True)
        worker.start()
        parts = []
        for piece in streamer:
            parts.append(piece)
            if on_text and piece:
                on_text(piece)
        worker.join()
        if failure:
            self.history.pop()
            raise failure[0]
        answer = "".join(parts).strip()
        self.history.append({"role": "assistant", "content": answer})
        return answer

    def _generate(self, ids: list[int], streamer: Any, failure: list[BaseException]) -> None:
        import torch

        from tunelab.generation.tokens import stop_token_ids

        sample = self.temperature > 0
        try:
            with torch.inference_mode():
                self.model.generate(
                    torch.tensor([ids]),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=sample,
                    temperature=self.temperature if sample else None,
                    top_p=self.top_p if sample else None,
                    top_k=None,
                    eos_token_id=stop_token_ids(self.tokenizer, self.model),
                    pad_token_id=self.tokenizer.pad_token_id,
                    streamer=streamer,
                )
        except BaseException as exc:  # surfaced in the calling thread, which is blocked on the streamer
            failure.append(exc)
            streamer.end()


def handle_command(session: ChatSession, line: str, say: Callable[[str], None]) -> bool:
    """Run a /command; False means the user asked to leave."""
    name, _, arg = line.partition(" ")
    if name in ("/exit", "/quit"):
        return False
    if name == "/reset":
        session.reset()
        say("(conversation cleared)")
    elif name == "/system":
        session.set_system(arg)
        say(f"(system prompt: {session.system!r})" if session.system else "(system prompt removed)")
    else:
        say(f"unknown command {name!r}; {HELP}")
    return True


def interactive(session: ChatSession, console: Any, read: Callable[[str], str] | None = None) -> None:
    """The terminal loop; ends on /exit, end of input (Ctrl-D) or Ctrl-C."""
    read = read or console.input
    console.print(f"[dim]{HELP}[/]")
    while True:
        try:
            line = read("[bold green]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not line:
            continue
        if line.startswith("/"):
            if not handle_command(session, line, lambda text: console.print(f"[dim]{text}[/]", highlight=False)):
                return
            continue
        console.print("[bold blue]bot>[/] ", end="")
        session.reply(
            line, on_text=lambda piece: console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
        )
        console.print()


def open_session(
    spec: str, *, system: str | None = None, max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0
) -> ChatSession:
    from tunelab.models.load import load_model

    model, tokenizer = load_model(spec, merge=True, dtype="auto")
    return ChatSession(
        model, tokenizer, system=system, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p
    )
