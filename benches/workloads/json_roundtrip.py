"""JSON round-trips of nested documents: discussion threads with reply trees.

Each thread is generated, serialised compactly (C encoder), parsed, normalised recursively
(camelCase keys to snake_case, derived fields), serialised again pretty-printed (``indent`` makes
``json`` use its pure-Python, recursive encoder), parsed again and validated by a long function.
Most reply trees are shallow; every fifth thread has a reply chain about 30 levels deep, so the
recursive passes allocate under deep stacks.
"""

from __future__ import annotations

import json
import random
from typing import Any

THREADS_AT_SCALE_1 = 225
DEEP_CHAIN = 30

_WORDS = (
    "memory leak cache python tracing allocator snapshot frame heap growth request worker "
    "service latency buffer object pool reference cycle garbage collector thread table"
).split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def make_comment(rng: random.Random, cid: int, depth: int, chain: int) -> dict[str, Any]:
    comment: dict[str, Any] = {
        "commentId": cid,
        "authorName": f"user{rng.randrange(5000)}",
        "createdAt": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
        "bodyText": _sentence(rng, rng.randrange(6, 18)),
        "voteScore": rng.randrange(-20, 300),
        "isEdited": rng.random() < 0.2,
        "flagReasons": [rng.choice(_WORDS) for _ in range(rng.randrange(0, 3))],
        "replies": [],
    }
    if chain > 0:
        comment["replies"].append(make_comment(rng, cid * 7 + 1, depth + 1, chain - 1))
    elif depth < 3:
        for k in range(rng.randrange(0, 4)):
            comment["replies"].append(make_comment(rng, cid * 7 + 2 + k, depth + 1, 0))
    return comment


def make_thread(rng: random.Random, tid: int) -> dict[str, Any]:
    chain = DEEP_CHAIN if tid % 5 == 0 else 0
    return {
        "threadId": tid,
        "threadTitle": _sentence(rng, 6),
        "forumInfo": {"forumName": rng.choice(_WORDS), "isPublic": True, "moderatorIds": [1, 2]},
        "tagNames": sorted({rng.choice(_WORDS) for _ in range(4)}),
        "comments": [make_comment(rng, tid * 100 + i, 0, chain if i == 0 else 0) for i in range(6)],
    }


def snake_case(key: str) -> str:
    out = []
    for ch in key:
        if ch.isupper():
            out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def normalise(value: Any, depth: int = 0) -> Any:
    """Rename keys and add derived fields all the way down the reply tree."""
    if isinstance(value, dict):
        result = {snake_case(k): normalise(v, depth + 1) for k, v in value.items()}
        if "body_text" in result:
            words = result["body_text"].split()
            result["word_count"] = len(words)
            result["preview"] = " ".join(words[:5])
            result["depth"] = depth // 2
        return result
    if isinstance(value, list):
        return [normalise(v, depth + 1) for v in value]
    return value


def flatten(comments: list[dict[str, Any]], path: tuple[int, ...], rows: list[tuple]) -> None:
    for index, comment in enumerate(comments):
        here = (*path, index)
        rows.append((here, comment["comment_id"], comment["vote_score"], comment["word_count"]))
        flatten(comment["replies"], here, rows)


def validate_thread(thread: dict[str, Any]) -> list[str]:
    """Schema checks of the kind API back-ends grow line by line; returns the problems found."""
    problems: list[str] = []
    if not isinstance(thread.get("thread_id"), int):
        problems.append("thread_id must be an integer")
    title = thread.get("thread_title")
    if not isinstance(title, str):
        problems.append("thread_title must be a string")
    elif not title:
        problems.append("thread_title must not be empty")
    elif len(title) > 300:
        problems.append("thread_title is too long")
    forum = thread.get("forum_info")
    if not isinstance(forum, dict):
        problems.append("forum_info must be an object")
    else:
        if not isinstance(forum.get("forum_name"), str):
            problems.append("forum_info.forum_name must be a string")
        if not isinstance(forum.get("is_public"), bool):
            problems.append("forum_info.is_public must be a boolean")
        moderators = forum.get("moderator_ids")
        if not isinstance(moderators, list):
            problems.append("forum_info.moderator_ids must be a list")
        elif not all(isinstance(m, int) for m in moderators):
            problems.append("forum_info.moderator_ids must hold integers")
    tags = thread.get("tag_names")
    if not isinstance(tags, list):
        problems.append("tag_names must be a list")
    elif len(tags) > 10:
        problems.append("too many tags")
    elif len(set(tags)) != len(tags):
        problems.append("duplicate tags")
    comments = thread.get("comments")
    if not isinstance(comments, list):
        problems.append("comments must be a list")
        return problems
    seen_ids: set[int] = set()
    stack = list(comments)
    total = 0
    edited = 0
    negative = 0
    flagged = 0
    longest = 0
    while stack:
        comment = stack.pop()
        total += 1
        cid = comment.get("comment_id")
        if not isinstance(cid, int):
            problems.append(f"comment without integer id at position {total}")
            continue
        if cid in seen_ids:
            problems.append(f"duplicate comment id {cid}")
        seen_ids.add(cid)
        author = comment.get("author_name")
        if not isinstance(author, str) or not author.startswith("user"):
            problems.append(f"comment {cid}: bad author {author!r}")
        created = comment.get("created_at")
        if not isinstance(created, str) or len(created) != 20 or created[4] != "-":
            problems.append(f"comment {cid}: bad timestamp {created!r}")
        body = comment.get("body_text")
        if not isinstance(body, str) or not body.endswith("."):
            problems.append(f"comment {cid}: body must be a sentence")
        elif len(body) > longest:
            longest = len(body)
        score = comment.get("vote_score")
        if not isinstance(score, int):
            problems.append(f"comment {cid}: score must be an integer")
        elif score < 0:
            negative += 1
        if comment.get("is_edited"):
            edited += 1
        reasons = comment.get("flag_reasons")
        if not isinstance(reasons, list):
            problems.append(f"comment {cid}: flag_reasons must be a list")
        elif reasons:
            flagged += 1
        if comment.get("word_count", 0) < 1:
            problems.append(f"comment {cid}: empty body")
        replies = comment.get("replies")
        if not isinstance(replies, list):
            problems.append(f"comment {cid}: replies must be a list")
        else:
            stack.extend(replies)
    if total and negative / total > 0.5:
        problems.append("thread is mostly downvoted")
    if total and flagged / total > 0.5:
        problems.append("thread is mostly flagged")
    # Summary strings are built here, well down the function, once per thread.
    summary = [
        f"thread {thread.get('thread_id')}",
        f"{total} comments",
        f"{edited} edited",
        f"{negative} negative",
        f"{flagged} flagged",
        f"longest body {longest} chars",
    ]
    problems.append("; ".join(summary))
    return problems


def run(scale: float) -> int:
    rng = random.Random(4321)
    checksum = 0
    for tid in range(max(1, int(THREADS_AT_SCALE_1 * scale))):
        thread = make_thread(rng, tid)
        compact = json.dumps(thread)
        parsed = json.loads(compact)
        normal = normalise(parsed)
        rows: list[tuple] = []
        flatten(normal["comments"], (), rows)
        pretty = json.dumps(normal, sort_keys=True, indent=2)
        again = json.loads(pretty)
        problems = validate_thread(again)
        checksum = (checksum * 31 + len(compact) + len(pretty) + len(rows) + len(problems)) % (
            1 << 61
        )
    return checksum
