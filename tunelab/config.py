"""The run configuration: one pydantic model per YAML section, each default stated once here.

Unknown keys are errors that name the key and suggest the nearest valid one; the resolved
config (every default filled in) is written into each run directory.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from tunelab.textio import InputFileError, load_yaml, read_text


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic takes YAML's `true` as 1 for a number field; a boolean there is a mistake.
        if isinstance(value, bool) and info.field_name and _numbers_only(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, not {str(value).lower()}")
        return value


def _numbers_only(annotation: Any) -> bool:
    """Whether a field's type takes numbers and not booleans (`int`, `float | None`, `int | Literal["all"]`)."""
    kinds: set[Any] = set()
    pending = [annotation]
    while pending:
        kind = pending.pop()
        if get_origin(kind) is Annotated:
            pending.append(get_args(kind)[0])
        elif get_args(kind) and get_origin(kind) is not Literal:
            pending.extend(get_args(kind))
        else:
            kinds.add(kind)
    return bool(kinds & {int, float}) and bool not in kinds


class LoraConfig(Section):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # "all-linear" is peft's shorthand for every linear layer except the output head.
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    # Decoder layers that get LoRA (DoRA, QLoRA): every one, or the last N. The layers below the lowest adapter
    # run forward only, so a step costs less, but on real dialogues the upper half learned less
    # (docs/training.md#defaults); the cafe demo trains the upper half.
    layers: Annotated[int, Field(ge=1)] | Literal["all"] = "all"


class PromptConfig(Section):
    """Prompt tuning and P-tuning: trained virtual tokens prepended to every input."""

    num_virtual_tokens: int = Field(16, ge=1)
    encoder_hidden_size: int = Field(128, ge=1)  # P-tuning's prompt encoder (MLP) width


class IA3Config(Section):
    # None: peft's default modules for the architecture (attention k/v and the MLP down projection).
    target_modules: list[str] | None = None
    feedforward_modules: list[str] | None = None


class ModelConfig(Section):
    name: str = "smollm2-135m"  # registry name, local directory or hub id
    # dora: LoRA with a learned magnitude; qlora: LoRA on a 4-bit base (needs CUDA + bitsandbytes).
    adapter: Literal["lora", "dora", "qlora", "ia3", "prompt_tuning", "p_tuning", "full"] = "lora"
    lora: LoraConfig = LoraConfig()
    ia3: IA3Config = IA3Config()
    prompt: PromptConfig = PromptConfig()
    system_prompt: str | None = None  # inserted when a conversation has none


class DataConfig(Section):
    train: str
    val: str | None = None  # without it, val_fraction of train is held out (by conversation)
    format: Literal["auto", "openai", "sharegpt", "alpaca"] = "auto"
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    max_length: int = Field(1024, ge=16)
    dedupe: bool = True
    seed: int = 0


class LogColumns(Section):
    """Column names in a feedback log (CSV header, JSON keys or Parquet columns)."""

    question: str = "question"
    answer: str = "answer"
    label: str = "label"  # good/bad, 1/0, yes/no, true/false, any case
    contexts: str | None = "contexts"  # a list, or one string split on logs.context_separator; None: no contexts
    comment: str | None = "comment"
    id: str | None = "id"  # None or an absent column: "<file>:<line>"
    tags: list[str] = ["role", "campus", "level"]


class HygieneConfig(Section):
    """Optional clean-up before training; each step is counted in the data report."""

    normalize: bool = True  # Unicode NFC
    pii: bool = True  # e-mails, phones, ID-like numbers, personal URLs -> [EMAIL], [PHONE], [ID], [URL]
    dedupe: bool = True  # exact duplicates
    near_duplicates: float | None = Field(0.95, gt=0.0, le=1.0)  # similarity threshold; None: off


class LogsConfig(Section):
    columns: LogColumns = LogColumns()
    context_separator: str = "||"
    template: str | None = None  # Jinja template of the user turn; None: tunelab.data.logs.DEFAULT_TEMPLATE
    hygiene: HygieneConfig = HygieneConfig()


class TeacherEndpoint(Section):
    """An OpenAI-compatible chat endpoint as bake's teacher (tunelab/train/bake_teacher.py); the
    client is the judge's (timeouts, counted retries), answers cached by (model, prompt, sample)."""

    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key_env: str | None = None  # name of the environment variable holding the key; None: no key
    timeout: float = Field(60.0, gt=0)  # seconds per request
    retries: int = Field(3, ge=0)  # further attempts on timeouts, connection errors, 429 and 5xx


class BakeConfig(Section):
    """recipe: bake — train the model to behave without the system prompt as the teacher does with it."""

    system_prompt_file: str | None = None  # YAML prompt file (tunelab.prompts.rules); required by recipe bake
    # logged: good answers from the logs; teacher: teacher samples that pass every rule;
    # distill: KL(teacher with prompt || student without) over the reply tokens.
    targets: list[Literal["logged", "teacher", "distill"]] = ["logged", "teacher"]
    # None: the base model itself, with the adapter switched off; a string: a model (registry
    # name, directory, hub id); a mapping: an OpenAI-compatible endpoint (TeacherEndpoint).
    teacher: str | TeacherEndpoint | None = None
    samples_per_question: int = Field(2, ge=1)  # drawn per question in each sampling round
    # k: rounds continue for a question until k of its replies pass every rule (after repair) or
    # max_samples_per_question were drawn; at most k targets per question are kept (unrepaired
    # ones first). None: one round, every passing reply kept. 2: a question the teacher seldom
    # gets right is sampled again instead of left without a target (docs/bake.md).
    passing_per_question: int | None = Field(2, ge=1)
    max_samples_per_question: int = Field(8, ge=1)
    # Rule-aware repair (tunelab/prompts/repair.py) of replies failing only repairable rules
    # (sentence limit, lists, closing question, forbidden phrase); re-checked against every rule.
    repair: bool = True
    # Teacher targets keep this share of each max_sentences / max_words limit free, rounded (4
    # sentences -> 3, 60 words -> 51, 3 sentences stay 3; the limit itself where that leaves no
    # target): a student's lengths spread around its targets', and trained at the limit it went
    # over it (docs/bake.md). 0: targets up to the limit.
    limit_headroom: float = Field(0.15, ge=0.0, lt=1.0)
    # Bake stops before training when the teacher's usable targets per question (after repair and
    # the sanity check) fall below this, naming the failing rules and the routes that work; 0: never.
    min_targets_per_question: float = Field(0.5, ge=0.0)
    # How the held-out split groups rewordings (tunelab/train/bake_inputs.py question_groups): None:
    # one question holds >= 30% of the other's content words; a number: shared words / all words of
    # the two >= it (for one narrow domain, where containment chains every question into one group).
    rewording_jaccard: float | None = Field(None, gt=0.0, le=1.0)
    temperature: float = Field(0.8, gt=0.0)
    max_new_tokens: int = Field(96, ge=1)
    # A prompt's targets are few (two per question): with fewer optimizer steps than this in
    # train.epochs, bake trains this many steps (train.max_steps, when set, wins). 400: on the
    # pharmacy prompt, 80 targets, one pass kept all rules on 52% of held-out questions, 400 steps
    # on 85% (docs/bake.md). 0: train.epochs as given.
    min_steps: int = Field(400, ge=0)
    max_teacher_questions: int | None = Field(None, ge=1)  # cap the (slow) teacher sampling
    distill_weight: float = Field(1.0, gt=0.0)
    # More questions than the logs hold (tunelab/train/bake_inputs.py): a file of questions
    # (logs' columns; answer/label not needed) for the teacher/distill targets, and N sampled
    # teacher rewrites of every training question, which keep their original's answer.
    questions_file: str | None = None
    paraphrases: int = Field(0, ge=0)


class PreferenceConfig(Section):
    """recipes kto and dpo (TRL)."""

    beta: float = Field(0.1, gt=0.0)
    max_length: int = Field(512, ge=16)
    dpo_loss: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    desirable_weight: float = Field(1.0, gt=0.0)  # KTO
    undesirable_weight: float = Field(1.0, gt=0.0)  # KTO


# Replies generated together wherever tunelab generates many (eval, compare, the demos, behaviour during
# training, adherence, the studio's evaluations): on 277 cafe turns 64 took 0.90x the time of 32 in
# fp32 and 0.91x in bf16, 0.79x of 16 in fp32 (docs/performance.md#generation).
GENERATION_BATCH = 64


class BehaviourEvalConfig(Section):
    """Generation-based behaviour evaluation at every eval_steps (recipe sft, needs validation data)."""

    enabled: bool = False  # costs one batched greedy generation over `contexts` per evaluation
    contexts: int = Field(16, ge=1)  # validation assistant turns, drawn with data.seed, fixed for the run
    max_new_tokens: int = Field(48, ge=1)
    batch_size: int = Field(GENERATION_BATCH, ge=1)  # generation batch


class SpeedProbe(Section):
    """What `auto` decided `train.precision` / `train.compile` from: written by the run into its
    config.yaml (tunelab/train/precision.py), so a run says on which machine and why; a run whose
    precision or compile is auto measures afresh and replaces it."""

    device: str  # the CPU's model name, or the CUDA device's
    threads: int | None = None  # torch CPU threads of the run
    fp32_gflops_1thread: float | None = None  # the probe's matmul rates (CPU, one thread)
    bf16_gflops_1thread: float | None = None
    why: str


class TrainConfig(Section):
    recipe: Literal["sft", "bake", "kto", "dpo"] = "sft"
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)  # overrides epochs when set
    # auto (tunelab/train/precision.py, docs/training.md#defaults): 1e-3 for LoRA (measured on the
    # cafe and Taskmaster-4 dialogues) and DoRA, 2e-4 for every other adapter and recipes kto/dpo.
    learning_rate: Annotated[float, Field(gt=0)] | Literal["auto"] = "auto"
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    # Examples per optimizer step (per process). auto: 1 on a CPU (the ask/confirm kind of choice is
    # learned per update, and one example has no padding), 8 on CUDA, 4 for recipes kto/dpo.
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    grad_accum: int = Field(1, ge=1)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 42
    logging_steps: int = Field(5, ge=1)
    # Validation loss every N optimizer steps. auto (`evaluation_cadence`): about ten evaluations a
    # run, fewer where the validation set is large (at most about a tenth of training), every 50 at most.
    eval_steps: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # Checkpoint every N steps; a multiple of eval_steps (the best checkpoint is kept). auto: eval_steps.
    save_steps: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    keep_checkpoints: int = Field(2, ge=1)
    threads: int | None = Field(None, ge=1)  # torch CPU threads; default: all cores
    # auto: measured at the start of the run (tunelab/train/precision.py): on a CPU whose bf16 matmul
    # runs >= 1.5x fp32, bf16_base (recipe sft, LoRA); bf16 autocast on CUDA with bf16; fp32
    # elsewhere. bf16_base: the frozen base weights stored in bf16, adapter weights and optimizer
    # state in fp32 (adapters only). The run's config.yaml records the choice and `probe`.
    precision: Literal["auto", "fp32", "bf16", "bf16_base"] = "auto"
    # Batch examples of similar length together: 1.2-1.3x more tokens/s at batch 8 (less padding,
    # docs/performance.md), but measured worse behaviour per update on the cafe and Taskmaster-4
    # dialogues (docs/training.md#defaults), so batches are drawn in a seeded random order by default.
    group_by_length: bool = False
    # false: batches in the training file's order instead of a seeded shuffle, so examples written
    # side by side stay in one batch (the cafe demo's dialogue-and-twin pairs, docs/cafe.md); every
    # epoch repeats that order. Needs group_by_length false; recipes sft and bake.
    shuffle: bool = True
    # Compile every decoder layer with torch.compile (recipe sft; needs a C/C++ compiler; the first
    # step pays for the compile, about 25 s on 2 cores). With bf16_base it lets the bf16 matmuls
    # pay off: the casts around them are fused away (docs/performance.md). auto: on with bf16_base
    # on a CPU (recipe sft), off otherwise (compiled fp32 measured no faster).
    compile: Literal["auto", True, False] = "auto"
    # Loss weight of the first token of every assistant turn, where a reply commits to its act
    # (ask or confirm, call a tool or answer); 1 = a plain mean over target tokens. Measured on
    # the cafe demo in docs/cafe.md. Recipe sft, one process.
    first_token_weight: float = Field(1.0, gt=0)
    # Focal loss: each target token's loss is weighted by (1 - p)^focal_gamma, p its probability,
    # so training concentrates on the tokens not yet learned; 0 = plain cross-entropy. Measured on
    # the cafe demo in docs/cafe.md. Recipe sft, one process; validation loss stays plain.
    focal_gamma: float = Field(0.0, ge=0)
    behaviour_eval: BehaviourEvalConfig = BehaviourEvalConfig()
    # The evaluation metric that picks the best checkpoint (kept and loaded at the end): the
    # validation loss (lower is better) or a behaviour rate from behaviour_eval (higher is better).
    # auto: behaviour_correct when behaviour_eval is enabled, else loss.
    best_metric: Literal["auto", "loss", "behaviour_appropriate", "behaviour_correct"] = "auto"
    probe: SpeedProbe | None = None  # written by the run: what `auto` measured and chose


class OutputConfig(Section):
    dir: str = "runs/run"
    merge: bool = False  # also write a merged model directory plain transformers loads


class Config(Section):
    model: ModelConfig = ModelConfig()
    data: DataConfig
    train: TrainConfig = TrainConfig()
    output: OutputConfig = OutputConfig()
    logs: LogsConfig = LogsConfig()  # how recipes bake/kto/dpo read data.train as a feedback log
    bake: BakeConfig = BakeConfig()
    preference: PreferenceConfig = PreferenceConfig()
    # Experiment trackers fed alongside metrics.jsonl (which is always written).
    track: list[Literal["wandb", "mlflow", "tensorboard", "trackio"]] = []
    run_name: str | None = None  # trackers' run name; default: the name of output.dir
    tags: list[str] = []
    project: str = "tunelab"  # trackers' project / experiment name


def epoch_steps(train: TrainConfig, examples: int) -> int:
    """Optimizer steps `train.epochs` passes over `examples` take, as transformers counts them (a
    resolved batch size)."""
    per_epoch = max(1, math.ceil(math.ceil(examples / train.batch_size) / train.grad_accum))
    return math.ceil(per_epoch * train.epochs)


def planned_steps(config: Config, examples: int) -> int:
    """Optimizer steps a run over `examples` takes: train.max_steps when set, else the epochs'
    steps, and for recipe bake at least bake.min_steps (a prompt's few targets passed over again)."""
    if config.train.max_steps:
        return config.train.max_steps
    steps = epoch_steps(config.train, examples)
    return max(steps, config.bake.min_steps) if config.train.recipe == "bake" else steps


# Per example, a validation forward pass costs about a third of a training step (forward and
# backward), as measured in docs/training.md#defaults.
EVAL_COST_PER_EXAMPLE = 1 / 3
EVAL_BUDGET = 0.10  # the share of training time the evaluations of an auto cadence may take
MAX_EVALUATIONS = 10  # enough points for a validation curve and a best checkpoint
MIN_EVAL_STEPS = 50  # the previous fixed default: auto never evaluates or saves more often


def evaluation_cadence(config: Config, train_examples: int, val_examples: int) -> tuple[Config, str | None]:
    """`config` with `train.eval_steps` and `train.save_steps` left at auto replaced by step counts
    for a run over `train_examples` (batch size resolved), and a line saying what auto chose and
    why (None when neither was auto).

    auto evaluates about MAX_EVALUATIONS times a run, fewer when that would spend more than
    EVAL_BUDGET of the training time on validation forward passes, and never more often than every
    MIN_EVAL_STEPS steps (short runs evaluate once, at the end); checkpoints follow the
    evaluations, or come about MAX_EVALUATIONS times a run when there is no validation data.

    >>> c = Config(data={"train": "t.jsonl"}, train={"batch_size": 1})
    >>> evaluation_cadence(c, 1117, 24)[0].train.eval_steps  # the cafe demo's data: ten evaluations
    112
    >>> evaluation_cadence(c, 900, 100)[0].train.eval_steps  # a 10% validation split: two
    450
    """
    t = config.train
    if t.eval_steps != "auto" and t.save_steps != "auto":
        return config, None
    steps = planned_steps(config, train_examples)
    if t.eval_steps != "auto":
        every, why = t.eval_steps, "as train.eval_steps"
    elif t.save_steps != "auto":
        every, why = t.save_steps, "each checkpoint evaluated, as train.save_steps"
    else:
        examples = steps * int(t.batch_size) * t.grad_accum  # batch_size is resolved by now
        affordable = (
            EVAL_BUDGET * examples / (EVAL_COST_PER_EXAMPLE * val_examples) if val_examples else MAX_EVALUATIONS
        )
        count = max(1, min(MAX_EVALUATIONS, math.floor(affordable)))
        every = min(steps, max(MIN_EVAL_STEPS, math.ceil(steps / count)))
        why = f"auto: {math.ceil(steps / every)} in {steps} steps" + (
            f", {val_examples} validation examples kept under {EVAL_BUDGET:.0%} of training" if val_examples else ""
        )
    save = every if t.save_steps == "auto" else t.save_steps
    train = t.model_copy(update={"eval_steps": every, "save_steps": save})
    what = "evaluation and checkpoint" if save == every else "evaluation"
    return config.model_copy(update={"train": train}), f"{what} every {every} steps ({why})"


class ConfigError(ValueError):
    pass


WORD_BRANCH = "literal["  # pydantic's name of the `Literal[...]` branch of a union field (`Literal["auto"]`)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Names of the fields of the section that `loc` (minus its last part) points into."""
    current: Any = model
    for part in loc[:-1]:
        field = current.model_fields.get(str(part)) if isinstance(current, type) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return list(current.model_fields)


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Each key of a YAML mapping (a path of keys) -> the line it is on, counted from 1."""
    found: dict[tuple[str, ...], int] = {}
    pending: list[tuple[tuple[str, ...], Any]] = [((), yaml.compose(text, Loader=yaml.SafeLoader))]
    while pending:
        path, node = pending.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found[(*path, str(key.value))] = key.start_mark.line + 1
                pending.append(((*path, str(key.value)), value))
    return found


def _line_of(loc: tuple[Any, ...], lines: dict[tuple[str, ...], int]) -> str:
    """'line N: ' of the key at `loc`, or of its nearest section in the file (a missing key's);
    'from --set: ' for a key an override gave (line 0)."""
    path = tuple(map(str, loc))
    while path and path not in lines:
        path = path[:-1]
    if not path:
        return ""
    return f"line {lines[path]}: " if lines[path] else "from --set: "


def _explain(err: ValidationError, source: str, lines_of_keys: dict[tuple[str, ...], int]) -> ConfigError:
    lines = []
    errors = err.errors()
    # A union field (bake.teacher: a string or a mapping) reports each branch with the branch's
    # name in the location; a mapping given is meant as the mapping, so the string branch is dropped.
    tags = {c.__name__ for c in Section.__subclasses__()}
    if any(tags & set(map(str, e["loc"])) for e in errors):
        errors = [e for e in errors if e["loc"][-1] != "str"]
    # A number-or-word field (train.batch_size: a number or 'auto') fails every branch: one line, naming them.
    words = {e["loc"][:-1]: e["ctx"]["expected"] for e in errors if str(e["loc"][-1]).startswith(WORD_BRANCH)}
    errors = [e for e in errors if not str(e["loc"][-1]).startswith(WORD_BRANCH)]
    for e in errors:
        if e["loc"][:-1] in words:
            e = {**e, "loc": e["loc"][:-1], "msg": f"{e['msg']}, or {words[e['loc'][:-1]]}"}
        e = {**e, "loc": tuple(p for p in e["loc"] if str(p) not in tags)}
        key = ".".join(str(p) for p in e["loc"])
        at = _line_of(e["loc"], lines_of_keys)
        if e["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(e["loc"][-1]), _fields_at(Config, e["loc"]), n=1, cutoff=0.5)
            hint = f" — did you mean '{'.'.join([*map(str, e['loc'][:-1]), near[0]])}'?" if near else ""
            lines.append(f"{at}unknown key '{key}'{hint}")
        elif e["type"] == "missing":
            lines.append(f"{at}missing required key '{key}'")
        else:
            message = e["msg"].removeprefix("Value error, ")
            lines.append(f"{at}'{key}': {message} (got {e.get('input')!r})")
    return ConfigError(f"{source}: invalid config:\n  " + "\n  ".join(lines))


def apply_override(data: dict[str, Any], assignment: str) -> tuple[str, ...]:
    """Apply one `--set a.b.c=value`; the value is parsed as YAML (numbers, booleans, lists).
    Returns the key's path, ('a', 'b', 'c')."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section")
    node[parts[-1]] = load_yaml(raw, f"--set {key}", ConfigError)
    return tuple(parts)


def load(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), data: dict[str, Any] | None = None
) -> Config:
    """Read a YAML file (or a dict), apply `key=value` overrides, validate."""
    source = str(path) if path else "config"
    raw: dict[str, Any] = dict(data or {})
    text = None
    if path is not None:
        try:
            text = read_text(path)
        except InputFileError as exc:
            raise ConfigError(str(exc)) from None
        raw = load_yaml(text, source, ConfigError) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of sections")
    set_keys = [apply_override(raw, assignment) for assignment in overrides]
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        # The file's lines, but a key an override set (or replaced) was given by --set, line 0.
        lines = _key_lines(text) if text is not None else {}
        lines = {k: n for k, n in lines.items() if not any(k[: len(given)] == given for given in set_keys)}
        raise _explain(err, source, lines | dict.fromkeys(set_keys, 0)) from None
    save, every = config.train.save_steps, config.train.eval_steps
    if isinstance(save, int) and isinstance(every, int) and save % every:
        raise ConfigError(
            f"{source}: train.save_steps ({config.train.save_steps}) must be a multiple of train.eval_steps ({config.train.eval_steps}) so the best checkpoint can be kept"
        )
    _check_behaviour_eval(config, source)
    if config.bake.questions_file and not ("teacher" in config.bake.targets or config.bake.targets == ["distill"]):
        raise ConfigError(
            f"{source}: bake.questions_file has questions without answers; they need bake.targets teacher (or distill alone, which distils over teacher samples)"
        )
    _check_bake(config, source)
    if config.train.recipe in ("kto", "dpo") and config.train.precision not in ("auto", "fp32"):
        raise ConfigError(
            f"{source}: train.precision {config.train.precision} is not supported by recipe {config.train.recipe} (TRL's trainers run fp32 here); use auto or fp32"
        )
    for knob, plain in (("first_token_weight", 1.0), ("focal_gamma", 0.0)):
        if getattr(config.train, knob) != plain and config.train.recipe != "sft":
            raise ConfigError(f"{source}: train.{knob} is for recipe sft (got recipe '{config.train.recipe}')")
    if not config.train.shuffle and config.train.recipe in ("kto", "dpo"):
        raise ConfigError(f"{source}: train.shuffle false is for recipes sft and bake (TRL's trainers shuffle)")
    if not config.train.shuffle and config.train.group_by_length:
        raise ConfigError(
            f"{source}: train.shuffle false keeps the file's order, which train.group_by_length (true) would regroup; set group_by_length: false"
        )
    if config.train.compile is True and config.train.recipe != "sft":
        raise ConfigError(
            f"{source}: train.compile is supported for recipe sft (got recipe '{config.train.recipe}'); use auto or false"
        )
    if config.train.precision == "bf16_base" and config.model.adapter == "full":
        raise ConfigError(
            f"{source}: train.precision bf16_base keeps only adapter weights in fp32; with model.adapter full every weight trains, use fp32 or bf16"
        )
    return config


def _check_bake(config: Config, source: str) -> None:
    b = config.bake
    if b.passing_per_question is not None and b.max_samples_per_question < max(
        b.passing_per_question, b.samples_per_question
    ):
        raise ConfigError(
            f"{source}: bake.max_samples_per_question ({b.max_samples_per_question}) must be at least "
            f"bake.passing_per_question ({b.passing_per_question}) and bake.samples_per_question ({b.samples_per_question})"
        )
    if isinstance(b.teacher, TeacherEndpoint):
        if "distill" in b.targets:
            raise ConfigError(
                f"{source}: bake.targets distill needs the teacher's logits, which an endpoint teacher "
                f"(bake.teacher.base_url {b.teacher.base_url}) does not return; drop distill or use a local teacher model"
            )
        if b.paraphrases:
            raise ConfigError(
                f"{source}: bake.paraphrases are written by a local teacher model; set bake.paraphrases: 0 with an endpoint teacher"
            )


def _check_behaviour_eval(config: Config, source: str) -> None:
    t = config.train
    if t.best_metric not in ("auto", "loss") and not t.behaviour_eval.enabled:
        raise ConfigError(f"{source}: train.best_metric '{t.best_metric}' needs train.behaviour_eval.enabled: true")
    if not t.behaviour_eval.enabled:
        return
    if t.recipe != "sft":
        raise ConfigError(
            f"{source}: train.behaviour_eval / train.best_metric work with recipe sft only (got recipe '{t.recipe}')"
        )
    if config.data.val is None and config.data.val_fraction == 0:
        raise ConfigError(
            f"{source}: train.behaviour_eval needs validation data: set data.val or a data.val_fraction above 0"
        )


def dump(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
