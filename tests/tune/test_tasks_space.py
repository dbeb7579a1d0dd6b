"""Task suite, search space and sampled-config resolution (no Ray)."""

import pytest
import yaml

from braid.spec import place_layers
from tune.space import BraidChoice, SearchSpace
from tune.tasks import TaskSpec, TaskSuite, evaluate_task, task_data

POOL = ["arith-gpt2", "code-qwen2", "facts-mistral", "prose-llama"]


def test_default_suite_covers_distinct_task_types():
    suite = TaskSuite.default()
    infos = [t.info for t in suite.tasks]
    assert len({i.type for i in infos}) == 4 and {i.metric for i in infos} == {
        "char_perplexity",
        "exact_match",
    }
    assert all(i.description and i.capabilities and 1 <= i.complexity <= 5 for i in infos)


@pytest.mark.parametrize("spec", TaskSuite.default(n_train=32, n_eval=8).tasks, ids=lambda s: s.name)
def test_splits_are_disjoint_and_sized(spec):
    data = task_data(spec)
    assert len(data.train) == 32 and len(data.eval) == 8
    assert not {i.prompt for i in data.eval} & set(data.train)
    if spec.info.metric == "exact_match":
        assert all(i.prompt.endswith("=") and i.answer for i in data.eval)


def test_suite_from_yaml_and_errors(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{"name": "a", "type": "arithmetic", "n_eval": 4}]}))
    assert TaskSuite.from_yaml(path).tasks[0].info.metric == "exact_match"
    with pytest.raises(ValueError, match="duplicate task names"):
        TaskSuite(tasks=[TaskSpec(name="a", type="arithmetic")] * 2)
    with pytest.raises(ValueError, match="type"):
        TaskSpec(name="a", type="poetry")


def test_braids_enumerate_subsets_and_anchors():
    space = SearchSpace(max_members=3)
    braids = space.braids(POOL)
    assert len(braids) == 6 * 2 + 4 * 3  # pairs x 2 anchors + triples x 3 anchors
    assert "prose-llama|code-qwen2,prose-llama" in braids
    narrowed = SearchSpace(pool=("prose-llama", "code-qwen2"), anchors=("prose-llama",)).braids(POOL)
    assert narrowed == ["prose-llama|code-qwen2,prose-llama"]


def test_space_validation_names_the_problem():
    with pytest.raises(ValueError, match="unknown fusion strategy 'moe'"):
        SearchSpace(strategies=("attention", "moe"))
    with pytest.raises(ValueError, match="not in the pool: \\['gpt-5'\\]"):
        SearchSpace(pool=("gpt-5", "prose-llama")).braids(POOL)
    with pytest.raises(ValueError, match="min_members"):
        SearchSpace(min_members=3, max_members=2)
    with pytest.raises(ValueError, match="extra"):
        SearchSpace.model_validate({"learning_rate": 1})


def test_space_from_yaml(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"space": {"strategies": ["attention"], "fusion_dims": [4, 64]}}))
    space = SearchSpace.from_yaml(path)
    params = space.param_space(POOL)
    assert params["strategy"].categories == ["attention"] and params["fusion_dim"].categories == [4, 64]


@pytest.mark.parametrize(
    "depth, points, placement, expected",
    [(4, 2, "early", [0, 1]), (4, 2, "late", [2, 3]), (4, 2, "spread", [1, 3]), (2, 3, "spread", [0, 1])],
)
def test_place_layers(depth, points, placement, expected):
    assert place_layers(depth, points, placement) == expected


def test_choice_from_trial_orders_anchor_first():
    cfg = dict(braid="prose-llama|code-qwen2,prose-llama", fusion_points=1, placement="late", strategy="router",
               fusion_dim=8, lr=1e-3, steps=10, temperature=0.0)  # fmt: skip
    choice = BraidChoice.from_trial(cfg, anchor_depth=2)
    assert choice.ordered_members() == ["prose-llama", "code-qwen2"] and choice.fusion_layers == (1,)
    with pytest.raises(ValueError, match="anchor 'x' is not one of the members"):
        BraidChoice(**{**choice.model_dump(), "anchor": "x"})


def test_unwritable_text_is_charged_per_lost_character(zoo_and_pool):
    """An anchor whose tokenizer cannot write the eval text must not win a perplexity task, yet its score is
    graded (not one floor shared by every such braid), so trials with that anchor still rank."""
    from tune.space import BraidChoice
    from tune.trainable import build_braid

    zoo, _ = zoo_and_pool
    spec = TaskSpec(name="p", type="language_modeling", n_train=4, n_eval=4)
    base = dict(strategy="router", fusion_points=1, placement="late", fusion_layers=(1,), fusion_dim=8, lr=1e-3,
                steps=1, temperature=0.0)  # fmt: skip
    prose = evaluate_task(
        build_braid(BraidChoice(members=("prose-llama", "arith-gpt2"), anchor="prose-llama", **base), zoo),
        spec,
    )
    arith = evaluate_task(
        build_braid(BraidChoice(members=("prose-llama", "arith-gpt2"), anchor="arith-gpt2", **base), zoo),
        spec,
    )
    assert prose["score"] > arith["score"] and arith["char_perplexity"] != 256.0


def test_graded_perplexity_grows_with_the_characters_lost(zoo_and_pool):
    from braid.model_wrapper import ModelWrapper
    from braid.zoo.evaluate import member_logits
    from tune.tasks import graded_char_perplexity

    zoo, _ = zoo_and_pool
    arith = ModelWrapper(zoo["arith-gpt2"])
    fn = member_logits(arith)
    written = graded_char_perplexity(fn, arith.tokenizer, ["12+30=42. 7*3=21."])
    lossy = graded_char_perplexity(fn, arith.tokenizer, ["12+30=42. 7*3=21. Whyzzy quokkas!"])
    assert 1.0 < written < lossy


def test_answer_nll_prefers_the_correct_answer(zoo_and_pool):
    """The exact-answer score reads the answer span: the (tiny) arithmetic specialist cannot add, but it finds a
    number after '=' far likelier than punctuation it never saw there."""
    from braid.model_wrapper import ModelWrapper
    from braid.zoo.evaluate import member_logits
    from tune.tasks import EvalItem, answer_nll

    zoo, _ = zoo_and_pool
    arith = ModelWrapper(zoo["arith-gpt2"])
    spec = TaskSpec(name="a", type="arithmetic", n_train=4, n_eval=8)
    items = task_data(spec).eval
    wrong = [EvalItem(prompt=i.prompt, answer="+" * len(i.answer)) for i in items]
    fn = member_logits(arith)
    assert 0 < answer_nll(fn, arith.tokenizer, items) < answer_nll(fn, arith.tokenizer, wrong)


def test_an_anchor_that_cannot_write_the_answer_does_not_win_on_it(zoo_and_pool):
    """The facts specialist's tokenizer has no digits: its [UNK] after '=' is easy to predict, and without the
    ln 256 charge per lost character it scored best on arithmetic (and the arithmetic one on facts)."""
    from braid.model_wrapper import ModelWrapper
    from braid.zoo.evaluate import member_logits
    from tune.tasks import answer_nll

    zoo, _ = zoo_and_pool
    items = task_data(TaskSpec(name="a", type="arithmetic", n_train=4, n_eval=8)).eval
    arith, facts = ModelWrapper(zoo["arith-gpt2"]), ModelWrapper(zoo["facts-mistral"])
    assert facts.tokenizer.decode(facts.tokenizer(items[0].answer, add_special_tokens=False)["input_ids"],
                                  skip_special_tokens=True) != items[0].answer  # fmt: skip
    assert answer_nll(member_logits(arith), arith.tokenizer, items) < answer_nll(
        member_logits(facts), facts.tokenizer, items
    )
