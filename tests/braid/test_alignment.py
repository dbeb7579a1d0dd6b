import torch

from braid.alignment import build_member_tree, last_at_or_before


def test_last_at_or_before_is_the_causal_rule():
    anchor_ends = torch.tensor([2, 5, 5, 9])
    member_ends = torch.tensor([1, 2, 4, 9, 12])
    assert last_at_or_before(member_ends, anchor_ends).tolist() == [-1, 0, 0, 3, 3]
    assert last_at_or_before(anchor_ends, member_ends).tolist() == [1, 2, 2, 3]


def test_tree_adds_a_tail_for_a_prefix_only_token():
    """Text "hello": the anchor writes "hel" then "lo"; the member reads "hel" as ["he", "l"] but "hello" as
    one token. Position 0 must see the member's own reading of "hel", which "hello" no longer contains."""
    prefixes = [([7, 8], [2, 3]), ([9], [5])]  # member tokenizations of "hel" and of "hello"
    tree = build_member_tree(prefixes, anchor_ends=[3, 5], growth=[0, 1])
    assert tree.ids == [9, 7, 8] and tree.num_final == 1
    assert tree.positions == [0, 0, 1]  # the tail restarts at its shared prefix (none here)
    assert tree.sigma == [2, 0]  # anchor 0 sees the tail's "l", anchor 1 sees "hello"
    assert tree.receive == [1, -1, 0]  # "he" ends before any anchor token ends: nothing to receive
    allow = tree.allowed()
    assert allow.tolist() == [[True, False, False], [False, True, False], [False, True, True]]


def test_tree_without_merges_is_the_plain_tokenization():
    prefixes = [([4], [1]), ([4, 5], [1, 3]), ([4, 5, 6], [1, 3, 4])]
    tree = build_member_tree(prefixes, anchor_ends=[1, 3, 4], growth=[0, 1, 2])
    assert tree.ids == [4, 5, 6] and tree.num_final == 3
    assert tree.sigma == [0, 1, 2] and tree.receive == [0, 1, 2]


def test_partial_anchor_tokens_share_the_previous_view():
    """Anchor tokens 1-2 are bytes of one character: the visible text does not grow, the member is not fed,
    and a member token can only receive from positions that existed when generation fed it."""
    prefixes = [([4], [1]), ([4, 5], [1, 2])]
    tree = build_member_tree(prefixes, anchor_ends=[1, 1, 1, 2], growth=[0, 3])
    assert tree.sigma == [0, 0, 0, 1]
    assert tree.receive == [0, 3]  # token 4 was fed at step 0, so it receives from 0, not from 2
