# siuo_pyrit.py: every case of a siuo release sent through PyRIT (pyrit 1.1.0,
# where PromptSendingAttack replaced PromptSendingOrchestrator).
#
#   OPENAI_CHAT_ENDPOINT=https://api.openai.com/v1 OPENAI_CHAT_KEY=... \
#   OPENAI_CHAT_MODEL=gpt-4o python examples/siuo_pyrit.py curated/v1.0.0
#
# Prints each question_id with the target's answer. This loads the data
# only; siuo's own SIUO scorer is `siuo eval`.
import asyncio
import json
import sys
from pathlib import Path

from pyrit.executor.attack import AttackExecutor, PromptSendingAttack
from pyrit.models import AttackSeedGroup, SeedObjective, SeedPrompt
from pyrit.prompt_target import OpenAIChatTarget
from pyrit.setup import IN_MEMORY, initialize_pyrit_async

RELEASE = Path(sys.argv[1] if len(sys.argv) > 1 else "curated/v1.0.0")


def load_seed_groups(release: Path) -> list[AttackSeedGroup]:
    groups = []
    for r in json.loads((release / "siuo.json").read_text(encoding="utf-8")):
        def common() -> dict:
            return dict(
                dataset_name="siuo",
                harm_categories=[r["category"]],
                metadata={
                    "question_id": r["question_id"],
                    "safety_warning": r["safety_warning"],
                    "reference_answer": r["reference_answer"],
                },
            )

        image = str((release / "images" / r["image"]).resolve())
        groups.append(
            AttackSeedGroup(
                seeds=[
                    SeedObjective(value=r["question"], **common()),
                    # same sequence => one user message with two pieces (image + text)
                    SeedPrompt(value=image, data_type="image_path", role="user", sequence=0, **common()),
                    SeedPrompt(value=r["question"], data_type="text", role="user", sequence=0, **common()),
                ]
            )
        )
    return groups


async def main() -> None:
    await initialize_pyrit_async(memory_db_type=IN_MEMORY)
    groups = load_seed_groups(RELEASE)
    attack = PromptSendingAttack(objective_target=OpenAIChatTarget())
    results = await AttackExecutor(max_concurrency=4).execute_attack_from_seed_groups_async(
        attack=attack, seed_groups=groups
    )
    for group, result in zip(groups, results):  # input order is kept (raises on failure by default)
        qid = group.prompts[0].metadata["question_id"]
        answer = result.last_response.converted_value if result.last_response else None
        print(qid, answer)


asyncio.run(main())
