"""A key the RP changes while a sync or upload is on its way: CMS's answer about the old
credentials must not condemn the new ones."""

from __future__ import annotations

from typing import Any

import pytest

from hub.keys import service as keys
from hub.keys.models import ApiKey, KeyStatus
from hub.keys.schemas import KeyRotate
from hub.syncs import service as syncs
from hub.syncs.models import RunOutcome
from tests.workers import test_syncs
from tests.workers.test_syncs import Plan

plan = test_syncs.plan  # the fixture


async def test_a_403_for_the_version_the_rp_just_replaced_leaves_the_key_usable(
    plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    reissued = plan.sim.state.rotate(plan.sim_key.key_id)  # CMS reissues the key
    plan.sim.state.expire_tokens()
    real_fail = syncs._fail

    async def rp_rotates_then_fail(*args: Any, **kwargs: Any) -> None:
        # The RP's rotation commits after the sync read the old credentials, before the
        # sync records CMS's refusal of them.
        async with plan.db.transaction() as other:
            await keys.rotate_key(
                other, plan.member.principal, key_id=plan.key.id,
                data=KeyRotate(key_id=reissued.key_id, secret=reissued.secret, verify=False),
                verifier=None,
            )  # fmt: skip
        monkeypatch.setattr(syncs, "_fail", real_fail)
        await real_fail(*args, **kwargs)

    monkeypatch.setattr(syncs, "_fail", rp_rotates_then_fail)
    refused = await plan.sync()
    assert refused.outcome is RunOutcome.BLOCKED
    async with plan.db.transaction() as session:
        key = await session.get(ApiKey, plan.key.id)
        assert key is not None
        assert key.status is KeyStatus.ACTIVE, "the current version was never refused"
    after = await plan.sync()
    assert after.outcome is RunOutcome.SUCCEEDED
