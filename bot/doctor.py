"""`ozonbot doctor`: what is wrong with this installation, each check a plain verdict and what to do.

It reads and asks, never changes anything: no migration is applied, no key file is created, no lease
is touched, so it is safe beside a running service. The exit code is 0 only when every check passes
(a part that is switched off passes as "off").
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp

from bot.config import Settings
from services.ozon.errors import OzonAuthError, OzonError
from services.security import ENCRYPTED_FIELDS, KEY_FILE, SecretBox
from services.storage import db

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
KEY_WARNING = timedelta(days=7)  # an Ozon key this close to its expiry fails the check: time to renew it
CLOCK_SKEW = 60.0  # seconds; signed links, WeChat timestamps and reminders all lean on a right clock


@dataclass
class Check:
    name: str
    ok: bool
    verdict: str
    action: str = ""  # what to do about it (empty when there is nothing to do)


class Doctor:
    def __init__(self, settings: Settings, *, now=lambda: datetime.now(UTC)):
        self.settings = settings
        self.now = now
        self.checks: list[Check] = []
        self.key: str | None = None
        self.database_up = False
        self.migrated = False  # the tables the other checks read exist only once every migration is applied

    def add(self, name: str, ok: bool, verdict: str, action: str = "") -> None:
        self.checks.append(Check(name, ok, verdict, "" if ok else action))

    async def run(self) -> list[Check]:
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            self.http = http
            try:
                await self._database()
                self._secret_key()
                if self.database_up and self.migrated:
                    await self._stored_secrets()
                elif self.key:
                    self.add("secret key", True, "a key is configured (without a migrated database the stored "
                             "secrets were not tried)")
                await self._telegram()
                await self._public_url()
                await self._clock()
                if self.database_up and self.migrated and self.key:
                    await self._sellers()
                    await self._wechat()
                    await self._tracking()
            finally:
                if self.database_up:
                    await db.close()
        return self.checks

    # ---- storage -------------------------------------------------------------------------------
    async def _database(self) -> None:
        url = self.settings.db_url
        if url.startswith("sqlite://") and ":memory:" not in url:
            path = Path(url.removeprefix("sqlite://").split("?")[0])
            if not path.exists():
                self.add("database", False, f"no database file at {path}",
                         "run `ozonbot migrate` (or start `ozonbot run`, which creates it)")
                return
        try:
            await db.connect(url, apply_migrations=False)
            self.database_up = True
            pending = await db.pending_migrations()
        except Exception as exc:
            self.add("database", False, f"does not answer ({_reason(exc)})",
                     "check OZONBOT_DATABASE_URL, and that the database server runs and lets this user in")
            return
        if pending:
            self.add("database", False, f"answers, but {len(pending)} migration(s) are not applied: "
                     f"{', '.join(pending)}", "run `ozonbot migrate` (stop old versions of the service first)")
        else:
            self.migrated = True
            self.add("database", True, "answers; every migration is applied")

    def _secret_key(self) -> None:
        settings = self.settings
        if settings.secret_key is not None:
            self.key, where = settings.secret_key.get_secret_value(), "OZONBOT_SECRET_KEY"
        elif (settings.data_dir / KEY_FILE).exists():
            self.key, where = (settings.data_dir / KEY_FILE).read_text().strip(), str(settings.data_dir / KEY_FILE)
        else:
            self.add("secret key", False, f"none: OZONBOT_SECRET_KEY is not set and {settings.data_dir / KEY_FILE} "
                     "does not exist", "restore the key that goes with this database; a new installation gets "
                     "one on the first `ozonbot run`")
            return
        try:
            self.box = SecretBox(self.key)
        except (ValueError, TypeError):
            self.key = None
            self.add("secret key", False, f"{where} is not a Fernet key",
                     "set the key that was kept with this database (44 url-safe base64 characters)")

    async def _stored_secrets(self) -> None:
        if self.key is None:
            return
        from services.keyrotation import model_for

        total, unreadable = 0, []
        for table, column in sorted(ENCRYPTED_FIELDS):
            model = model_for(table)
            for pk, value in await model.all().values_list(model._meta.pk_attr, column):
                if not value:
                    continue
                total += 1
                try:
                    self.box.decrypt(value)
                except ValueError:
                    unreadable.append(f"{table}.{column} #{pk}")
        if unreadable:
            shown = ", ".join(unreadable[:5]) + (" …" if len(unreadable) > 5 else "")
            self.add("secret key", False, f"cannot decrypt {len(unreadable)} of {total} stored secret(s): {shown}",
                     "this is not the key these secrets were stored with: restore the right OZONBOT_SECRET_KEY "
                     "or secret.key; if a rotation was cut short, run `ozonbot rotate-key` again")
        else:
            self.add("secret key", True, f"decrypts every stored secret ({total})")

    # ---- Telegram ------------------------------------------------------------------------------
    async def _telegram(self) -> None:
        settings = self.settings
        if not settings.telegram_token:
            self.add("telegram", True, "off (OZONBOT_TELEGRAM_TOKEN is not set)")
            return
        base = f"{settings.telegram_api_url}{settings.telegram_token.get_secret_value()}"
        try:
            me = await self._bot_api(f"{base}/getMe")
        except _Refused as exc:
            self.add("telegram", False, f"the token is refused ({exc})",
                     "copy the token again from @BotFather into OZONBOT_TELEGRAM_TOKEN")
            return
        except Exception as exc:
            self.add("telegram", False, f"the Bot API does not answer ({_reason(exc)})",
                     "check this server's connection to api.telegram.org (or OZONBOT_TELEGRAM_API_URL)")
            return
        self.add("telegram", True, f"the token works: @{me.get('username', '?')}")
        try:
            info = await self._bot_api(f"{base}/getWebhookInfo")
        except Exception as exc:
            self.add("telegram webhook", False, f"getWebhookInfo failed ({_reason(exc)})", "run doctor again")
            return
        actual, wanted = info.get("url") or "", settings.telegram_webhook_url or ""
        if actual == wanted:
            mode = f"webhook at {wanted}" if wanted else "long polling, no webhook set"
            last = info.get("last_error_message")
            if wanted and last:
                self.add("telegram webhook", False, f"{mode}, but Telegram's last delivery failed: {last}",
                         "make sure the proxy passes /telegram/webhook to ozonbot over valid HTTPS")
            else:
                self.add("telegram webhook", True, f"matches the configuration: {mode}")
        elif wanted:
            self.add("telegram webhook", False, f"Telegram delivers to {actual or 'nowhere (no webhook)'}, the "
                     f"configuration says {wanted}", "start (or restart) `ozonbot run`: it sets the webhook")
        else:
            self.add("telegram webhook", False, f"a webhook is set ({actual}) but the configuration polls",
                     "set OZONBOT_TELEGRAM_WEBHOOK_URL to it, or restart `ozonbot run` in polling mode "
                     "(which removes the webhook); two installations must not share one bot token")

    async def _bot_api(self, url: str) -> dict:
        async with self.http.get(url) as response:
            body = await response.json(content_type=None)
        if not body.get("ok"):
            if response.status in (401, 404):
                raise _Refused(f"{response.status} {body.get('description', '')}".strip())
            raise RuntimeError(body.get("description") or f"HTTP {response.status}")
        return body["result"]

    # ---- this server, from the outside ---------------------------------------------------------
    async def _public_url(self) -> None:
        url = self.settings.public_url
        if not url:
            self.add("public url", False, "OZONBOT_PUBLIC_URL is not set: links in messages point at "
                     f"{self.settings.base_url}, which phones cannot open",
                     "set OZONBOT_PUBLIC_URL to this server's HTTPS address (see deploy/)")
            return
        health = url.rstrip("/") + "/health"
        try:
            async with self.http.get(health) as response:
                body = await response.text()
                status = response.status
        except Exception as exc:
            self.add("public url", False, f"{health} is unreachable ({_reason(exc)})",
                     "is `ozonbot run` running, and does the HTTPS proxy pass /health to it?")
            return
        if status == 200:
            self.add("public url", True, f"{health} reaches this ozonbot, which is ready")
        elif status == 503 and '"database"' in body:
            self.add("public url", False, f"{health} reaches ozonbot, but it is not ready: {body.strip()}",
                     "see the part marked down (its own check here says more)")
        else:
            self.add("public url", False, f"{health} answers HTTP {status}, not ozonbot",
                     "point the proxy's routes at ozonbot's OZONBOT_HTTP_HOST:OZONBOT_HTTP_PORT (see deploy/)")

    async def _clock(self) -> None:
        try:
            async with self.http.get(self.settings.ozon_api_url) as response:
                date = response.headers.get("Date")
        except Exception as exc:
            self.add("clock", False, f"Ozon ({self.settings.ozon_api_url}) does not answer ({_reason(exc)})",
                     "check this server's connection to api-seller.ozon.ru")
            return
        if not date:
            self.add("clock", False, "Ozon's answer carries no Date header to compare with", "run doctor again")
            return
        skew = (self.now() - parsedate_to_datetime(date)).total_seconds()
        if abs(skew) > CLOCK_SKEW:
            self.add("clock", False, f"this server's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} "
                     "Ozon's", "turn on time synchronisation: `timedatectl set-ntp true`")
        else:
            self.add("clock", True, f"within {abs(skew):.0f} s of Ozon's")

    # ---- per seller ----------------------------------------------------------------------------
    async def _sellers(self) -> None:
        from services.sellers import OzonGateway
        from services.storage.models import Seller

        sellers = await Seller.all().order_by("id")
        if not sellers:
            self.add("ozon sellers", True, "none connected yet (/connect in a chat, or `ozonbot seller add`)")
            return
        gateway = OzonGateway(base_url=self.settings.ozon_api_url, box=self.box)
        await gateway.start()
        try:
            for seller in sellers:
                await self._seller(gateway, seller)
        finally:
            await gateway.close()

    async def _seller(self, gateway, seller) -> None:
        name = f"ozon seller {seller.client_id}"
        fix = (f"issue a new API key in Ozon Seller Center and connect it again (/connect {seller.client_id} "
               f"<key>, or `ozonbot seller add --client-id {seller.client_id} --api-key …`)")
        try:
            roles = await gateway.for_seller(seller).roles()
        except ValueError:
            self.add(name, False, "its stored key cannot be decrypted", "see the secret key check")
            return
        except OzonAuthError as exc:
            self.add(name, False, f"Ozon refuses the key ({exc.token or exc.reason})", fix)
            return
        except OzonError as exc:
            self.add(name, False, f"Ozon did not answer ({exc})", "run doctor again later")
            return
        if roles.expires_at is None:
            self.add(name, True, "the key works (Ozon gives no expiry date)")
            return
        left = roles.expires_at - self.now()
        when = f"{roles.expires_at:%Y-%m-%d}"
        if left <= KEY_WARNING:
            state = "expired on" if left.total_seconds() <= 0 else f"expires in {max(0, left.days)} day(s), on"
            self.add(name, False, f"the key {state} {when}", fix)
        else:
            self.add(name, True, f"the key works and expires on {when} (in {left.days} days)")

    async def _tracking(self) -> None:
        """Each seller's Kuaidi100 account answers a signed query (no check when nobody tracks parcels)."""
        from services.kuaidi100.client import Kuaidi100Client
        from services.kuaidi100.errors import Kuaidi100AuthError, Kuaidi100Error
        from services.storage.models import TrackingAccount

        client = Kuaidi100Client(self.http, self.settings.kuaidi100_api_url)
        for account in await TrackingAccount.all().prefetch_related("seller").order_by("id"):
            client_id = account.seller.client_id
            name = f"kuaidi100 {client_id}"
            fix = (f"check the key and customer id in Kuaidi100's console (我的 → 授权信息), then "
                   f"`ozonbot seller kuaidi100 {client_id} --key … --customer …`")
            try:
                key = self.box.decrypt(account.key_enc)
            except ValueError:
                self.add(name, False, "its stored key cannot be decrypted", "see the secret key check")
                continue
            try:
                await client.check_account(key, account.customer)
            except Kuaidi100AuthError as exc:
                self.add(name, False, f"Kuaidi100 refuses the key or customer id ({exc})", fix)
            except (Kuaidi100Error, aiohttp.ClientError, TimeoutError) as exc:
                self.add(name, False, f"Kuaidi100 did not answer ({_reason(exc)})", "run doctor again later")
            else:
                self.add(name, True, "the account answers a signed query: waybills are watched")

    async def _wechat(self) -> None:
        from bot.app import build_services
        from handlers.wechat.api import WechatApiError, WechatHttp
        from handlers.wechat.work import WecomChannel
        from services.storage.models import WecomApp

        apps = await WecomApp.all().order_by("id")
        if not apps and not self.settings.official_account:
            return
        services = build_services(self.settings.model_copy(update={"secret_key": _secret(self.key)}))
        http = WechatHttp()
        try:
            wecom = WecomChannel(services.wechat_port(), http)
            for app in apps:
                name = f"wecom app {app.corp_id}/{app.agent_id}"
                try:
                    auth = wecom.auth(wecom.credentials(app))
                except ValueError:
                    self.add(name, False, "its stored secrets cannot be decrypted", "see the secret key check")
                    continue
                try:
                    await http.token(auth)
                except WechatApiError as exc:
                    self.add(name, False, f"WeCom gives no token ({exc.errcode} {exc.errmsg})",
                             "check the app's Secret and this server's IP in 企业可信IP, then "
                             "`ozonbot seller wecom` again")
                except Exception as exc:
                    self.add(name, False, f"WeCom does not answer ({_reason(exc)})", "run doctor again later")
                else:
                    self.add(name, True, "gets an access token")
            if self.settings.official_account:
                from handlers.wechat.official_sender import OfficialSender

                sender = OfficialSender(services.wechat_port(), http)
                try:
                    await http.token(sender.auth)
                except WechatApiError as exc:
                    self.add("official account", False, f"WeChat gives no token ({exc.errcode} {exc.errmsg})",
                             "check OZONBOT_WECHAT_APP_ID / OZONBOT_WECHAT_APP_SECRET and the IP whitelist "
                             "(IP白名单) in the Official Account console")
                except Exception as exc:
                    self.add("official account", False, f"WeChat does not answer ({_reason(exc)})",
                             "run doctor again later")
                else:
                    self.add("official account", True, "gets an access token")
        finally:
            await http.close()


class _Refused(Exception):
    pass


def _secret(value: str | None):
    from pydantic import SecretStr

    return SecretStr(value) if value else None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def doctor_command(settings: Settings, args) -> int:
    checks = await Doctor(settings).run()
    passed = all(c.ok for c in checks)
    if getattr(args, "json", False):
        print(json.dumps({"ok": passed, "checks": [asdict(c) for c in checks]}, ensure_ascii=False, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.verdict}")
            if c.action:
                print(f"      {'':<{width}}  → {c.action}")
        failed = sum(not c.ok for c in checks)
        print("all checks passed" if passed else f"{failed} of {len(checks)} check(s) failed", file=sys.stderr)
    return 0 if passed else 1
