"""WeCom group robot: new-order alerts as markdown with the action-page link, within 20 a minute."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.app import build_services
from handlers.wechat.api import WechatHttp
from handlers.wechat.robot import RobotSender
from sandbox.wechat.wecom import FakeWecom
from services.storage.models import GroupRobot, Member, Notification
from tests.conftest import API_KEY, CLIENT_ID

ROBOT_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


@pytest.fixture
async def fake_wecom():
    fake = FakeWecom(robot_limit=20, robot_period=1.0)  # the robot's minute, scaled to a second
    fake.add_robot(ROBOT_KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def services(make_settings, sandbox, fake_wecom):
    svc = build_services(make_settings(ozon_api_url=sandbox.base_url, wecom_api_url=fake_wecom.base_url,
                                       public_url="https://desk.example.com"))
    await svc.start(schedule=False)
    yield svc
    await svc.stop()


async def test_robot_alerts_carry_the_action_page_link_within_the_rate_limit(services, sandbox, fake_wecom):
    seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
    url = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={ROBOT_KEY}"
    member = await services.apps.add_robot(seller, url, name="打包群")
    assert (await services.apps.add_robot(seller, ROBOT_KEY)).id == member.id  # the same robot once
    assert ROBOT_KEY not in (await GroupRobot.get(member=member)).key_enc
    sender = RobotSender(services.wechat_port(), WechatHttp(), period=1.0)
    services.channels.register(sender)

    postings = sandbox.generate_orders(CLIENT_ID, 25, flows=["non_integrated"])
    started = time.monotonic()
    await services.sync.poll(seller)
    assert time.monotonic() - started < 1.0, "a full window defers alerts instead of holding every desk up"
    assert len(fake_wecom.robot_messages) == 20
    deferred = await Notification.filter(state="failed", member=member)
    assert len(deferred) == 5 and all(n.error.startswith("deferred") and n.attempts == 0 for n in deferred)
    await asyncio.sleep(1.2)  # the robot's (scaled) minute, and our margin, have passed: the retry job sends the rest
    assert await services.outbox.retry_failed() == 5
    assert [c for c in fake_wecom.calls_to("webhook/send") if c.errcode] == []  # never hit 45009
    assert len(fake_wecom.robot_messages) == 25
    first = fake_wecom.robot_messages[0]["content"]
    number = postings[0]["posting_number"]
    message = next(m["content"] for m in fake_wecom.robot_messages if number in m["content"])
    assert message.startswith("**") and "新订单" in message  # Chinese by default
    link = message.rsplit("](", 1)[1].rstrip(")")
    assert link.startswith("https://desk.example.com/a/")
    claim = services.links.verify(link.rsplit("/", 1)[1])
    posting_id = (await services.desk.find(seller.id, number)).id
    assert claim is not None and (claim.member_id, claim.posting_id) == (member.id, posting_id)
    assert len(first.encode()) <= 4096

    robot_member = await Member.get(id=member.id)
    assert robot_member.channel == "wecom_robot" and robot_member.role == "packer"


async def test_robot_key_is_checked_and_nothing_stored_on_bad_input(services):
    from services.wechat_apps import SetupError

    seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
    with pytest.raises(SetupError):
        await services.apps.add_robot(seller, "bad key!")
    assert await GroupRobot.all().count() == 0


async def test_a_robot_added_again_after_the_secret_key_rotated_is_the_same_robot(services):
    """L9: the robot's member id was a MAC under the Fernet key: after rotate-key, `seller robot` with the same
    webhook key made a second member and every alert reached the group twice."""
    from cryptography.fernet import Fernet

    from services.security import SecretBox
    from services.wechat_apps import WechatApps

    seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
    first = await services.apps.add_robot(seller, ROBOT_KEY)
    rotated = SecretBox(Fernet.generate_key().decode())
    for robot in await GroupRobot.all():  # what rotate-key does to every stored secret
        await GroupRobot.filter(id=robot.id).update(key_enc=rotated.encrypt(services.box.decrypt(robot.key_enc)))
    again = await WechatApps(rotated).add_robot(seller, ROBOT_KEY)
    assert again.id == first.id and await GroupRobot.all().count() == 1
