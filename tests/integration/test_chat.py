"""`tunelab chat`: the session logic, the non-interactive mode and the interactive loop fed by stdin."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def session(tiny_model_dir):
    from tunelab.generation.chat import open_session

    return open_session(tiny_model_dir, max_new_tokens=10)


@pytest.fixture(scope="module")
def app():
    from tunelab.cli import app

    return app


def plain_greedy(session, messages, n=10) -> str:
    from tunelab.generation.engine import build_prompt
    from tunelab.generation.tokens import stop_token_ids

    ids = build_prompt(session.tokenizer, messages, None)
    with torch.inference_mode():
        out = session.model.generate(
            torch.tensor([ids]),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=stop_token_ids(session.tokenizer, session.model),
            pad_token_id=session.tokenizer.pad_token_id,
        )
    return session.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()


def test_reply_streams_pieces_that_add_up_to_the_greedy_answer(session):
    session.reset()
    pieces: list[str] = []
    answer = session.reply("a latte please", on_text=pieces.append)
    assert answer == plain_greedy(session, [{"role": "user", "content": "a latte please"}])
    assert len(pieces) > 1 and "".join(pieces).strip() == answer


def test_history_system_and_reset(session):
    session.reset()
    session.set_system("You are a barista.")
    first = session.reply("hi")
    session.reply("and a muffin")
    assert [m["role"] for m in session.messages()] == ["system", "user", "assistant", "user", "assistant"]
    assert session.messages()[2]["content"] == first
    # The second answer was generated from the whole history, not just the last line.
    expected = plain_greedy(session, session.messages()[:4])
    assert session.history[-1]["content"] == expected
    session.reset()
    assert session.messages() == [{"role": "system", "content": "You are a barista."}]
    session.set_system("")
    assert session.messages() == []


def test_message_mode_prints_the_reply_and_exits(app, tiny_model_dir, session):
    result = CliRunner().invoke(app, ["chat", tiny_model_dir, "--message", "a latte please", "--max-tokens", "10"])
    assert result.exit_code == 0, result.output
    session.reset()
    assert result.stdout.strip() == plain_greedy(session, [{"role": "user", "content": "a latte please"}])


def test_interactive_mode_reads_stdin_until_exit(app, tiny_model_dir, session):
    stdin = "hello\n/system Be brief.\n/bogus\nhello\n/reset\n/exit\nnever read\n"
    result = CliRunner().invoke(app, ["chat", tiny_model_dir, "--max-tokens", "10"], input=stdin)
    assert result.exit_code == 0, result.output
    out = result.stdout
    session.reset()
    first = plain_greedy(session, [{"role": "user", "content": "hello"}])
    assert first in out
    assert "system prompt: 'Be brief.'" in out and "unknown command '/bogus'" in out
    assert "conversation cleared" in out
    assert out.count("you>") == 6  # five lines handled, then /exit; the line after it is never read


def test_interactive_mode_ends_cleanly_at_end_of_input(app, tiny_model_dir):
    result = CliRunner().invoke(app, ["chat", tiny_model_dir, "--max-tokens", "4"], input="hi\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("bot>") == 1
