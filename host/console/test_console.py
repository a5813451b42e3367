#!/usr/bin/env python3
"""End-to-end test of the tokenhost console in headless Chromium (Playwright).

    python3 host/console/test_console.py --base-url http://127.0.0.1:PORT \
        --client-id ID --client-secret SECRET --screenshots DIR

The server must serve the console at /console and the API on the same origin, with a
management client (ID, SECRET) holding every management scope (the bootstrap client).
Needs `pip install playwright` and Debian's /usr/bin/chromium (never `playwright install`).
Exits 0 when every check passed; otherwise 1, naming the check that failed.
"""
import argparse
import base64
import json
import os
import re
import secrets
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    sys.exit("test_console.py: needs Playwright from PyPI (pip install playwright); the browser is /usr/bin/chromium")

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_RULE_PATH = os.path.join(HERE, "..", "..", "rules", "myrule.js")
# Compiling a rule takes a few seconds (more on a busy machine): generous waits.
TIMEOUT_MS = 60_000


class CheckFailed(Exception):
    pass


class Run:
    def __init__(self, args):
        self.args = args
        self.base = args.base_url.rstrip("/")
        self.origin = urllib.parse.urlsplit(self.base)
        self.passed = []
        self.shots = args.screenshots
        os.makedirs(self.shots, exist_ok=True)
        self.foreign_requests = []
        self.csp_violations = []
        self.page_errors = []
        self.current = "start"

    def step(self, name):
        self.current = name
        print(f"--   {name}", flush=True)

    def check(self, name, ok, detail=""):
        if not ok:
            raise CheckFailed(f"{name}: {detail}" if detail else name)
        self.passed.append(name)
        print(f"ok   {name}", flush=True)

    def shot(self, page, name):
        path = os.path.join(self.shots, f"{name}.png")
        page.screenshot(path=path, full_page=True)
        return path

    # -- outside the browser ------------------------------------------------------------

    def token_request(self, client_id, client_secret, audience):
        body = json.dumps({"grant_type": "client_credentials", "client_id": client_id,
                           "client_secret": client_secret, "audience": audience}).encode()
        req = urllib.request.Request(f"{self.base}/oauth/token", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, json.loads(res.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def management_post(self, path, body):
        with urllib.request.urlopen(f"{self.base}/.well-known/oauth-authorization-server", timeout=30) as res:
            issuer = json.loads(res.read())["issuer"]
        status, token = self.token_request(self.args.client_id, self.args.client_secret, issuer.rstrip("/") + "/api/v2/")
        if status != 200:
            raise CheckFailed(f"no management token from outside the browser: {status} {token}")
        req = urllib.request.Request(f"{self.base}/api/v2{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {token['access_token']}"})
        with urllib.request.urlopen(req, timeout=60) as res:
            return json.loads(res.read())

    @staticmethod
    def jwt_claims(token):
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload))

    # -- in the page ----------------------------------------------------------------------

    def no_token_in_storage(self, page, context, when):
        storage = page.evaluate("""() => ({
            local: Object.keys(localStorage).map(k => k + '=' + localStorage.getItem(k)),
            session: Object.keys(sessionStorage).map(k => k + '=' + sessionStorage.getItem(k)),
            cookie: document.cookie,
        })""")
        cookies = context.cookies()
        self.check(f"no token in web storage ({when})",
                   not storage["local"] and not storage["session"] and not storage["cookie"] and not cookies,
                   f"found {storage!r} cookies={cookies!r}")

    def unnamed_controls(self, page):
        """Controls without an accessible name (label, aria-label(ledby), text or title)."""
        return page.evaluate("""() => {
            const out = [];
            const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
            for (const el of document.querySelectorAll('input, select, textarea, button, a[href], [contenteditable=true], [role=textbox]')) {
                if (!visible(el) || el.type === 'hidden') continue;
                const named = (el.getAttribute('aria-label') || '').trim()
                    || (el.getAttribute('aria-labelledby') || '').split(/\\s+/).some(id => id && document.getElementById(id)?.textContent.trim())
                    || (el.labels && Array.from(el.labels).some(l => l.textContent.trim()))
                    || ((el.tagName === 'BUTTON' || el.tagName === 'A') && el.textContent.trim())
                    || (el.getAttribute('title') || '').trim();
                if (!named) out.push(el.outerHTML.slice(0, 120));
            }
            return out;
        }""")

    def accessible(self, page, where):
        missing = self.unnamed_controls(page)
        self.check(f"every control has an accessible name ({where})", not missing, "; ".join(missing[:5]))

    def no_horizontal_overflow(self, page, where):
        sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        self.check(f"no horizontal page overflow ({where})", sizes[0] <= sizes[1] + 1, f"scrollWidth {sizes[0]} > {sizes[1]}")

    def set_editor(self, page, text):
        editor = page.get_by_role("textbox", name="Rule script")
        editor.click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        # insertText: one input, so auto-closing brackets and auto-indent leave it as is.
        page.keyboard.insert_text(text)
        content = self.editor_text(page)
        if content != text.rstrip("\n") and content != text:
            raise CheckFailed(f"the editor holds something else than what was typed: {content!r}")

    def editor_text(self, page):
        return "\n".join(page.locator(".cm-content .cm-line").all_text_contents())

    # -- the scenario ----------------------------------------------------------------------

    def scenario(self, pw):
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page = context.new_page()

        def on_request(request):
            url = urllib.parse.urlsplit(request.url)
            if url.scheme in ("data", "blob", "about"):
                return
            if (url.scheme, url.netloc) != (self.origin.scheme, self.origin.netloc):
                self.foreign_requests.append(request.url)

        def on_console(msg):
            if "Content Security Policy" in msg.text or "Refused to" in msg.text:
                self.csp_violations.append(msg.text)

        page.on("request", on_request)
        page.on("console", on_console)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page = page
        suffix = secrets.token_hex(3)
        identifier = f"https://api-{suffix}.example.com/"

        # Sign in: a wrong secret first, then the right one.
        self.step("sign in")
        page.goto(f"{self.base}/console")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        self.accessible(page, "sign in")
        page.get_by_label("Client ID", exact=True).fill(self.args.client_id)
        page.get_by_label("Client secret", exact=True).fill("not-the-secret")
        page.get_by_role("button", name="Sign in").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("invalid_client")
        self.check("a wrong secret shows the server's error", True)
        self.shot(page, "01-sign-in-error")
        page.get_by_label("Client secret", exact=True).fill(self.args.client_secret)
        page.get_by_role("button", name="Sign in").click()
        nav = page.get_by_role("navigation", name="Sections")
        expect(nav.or_(page.get_by_role("alert"))).to_be_visible()
        if not nav.is_visible():
            raise CheckFailed(f"signing in with --client-id/--client-secret failed: {page.get_by_role('alert').inner_text()}")
        for name in ("APIs", "Clients", "Rules", "Logs", "Keys"):
            expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
        self.check("signed in: the five sections are linked", True)
        self.no_token_in_storage(page, context, "after sign-in")

        # An API with a scope `test`, ES256.
        self.step("APIs")
        expect(page.get_by_role("heading", name="APIs")).to_be_visible()
        page.get_by_label("Identifier", exact=True).fill(identifier)
        page.get_by_label("Name", exact=True).fill(f"Example API {suffix}")
        page.get_by_label("Scopes", exact=True).fill("test Test scope")
        page.get_by_label("Signing algorithm", exact=True).select_option("ES256")
        page.get_by_label("Token lifetime (seconds)", exact=True).fill("3600")
        page.get_by_role("button", name="Create API").click()
        row = page.get_by_role("row").filter(has_text=identifier)
        expect(row).to_contain_text("ES256")
        expect(row).to_contain_text("test")
        expect(row).to_contain_text("3600 s")
        self.check("an API is created (scopes, signing algorithm, lifetime)", True)
        page.get_by_role("button", name=f"Edit Example API {suffix}").click()
        expect(page.get_by_label("Identifier", exact=True)).to_have_value(identifier)
        page.get_by_label("Token lifetime (seconds)", exact=True).fill("7200")
        page.get_by_role("button", name="Save API").click()
        expect(row).to_contain_text("7200 s")
        self.check("an API is edited", True)
        self.accessible(page, "APIs")
        self.shot(page, "02-apis")

        # A client (its secret shown once) and a grant.
        self.step("clients and grants")
        nav.get_by_role("link", name="Clients", exact=True).click()
        page.get_by_label("Name", exact=True).fill(f"Billing worker {suffix}")
        page.get_by_label("Metadata (JSON)", exact=True).fill('{"tier": "gold"}')
        page.get_by_role("button", name="Create client").click()
        once = page.get_by_role("region", name="New client secret")
        expect(once).to_be_visible()
        client_id = once.get_by_label("New client ID", exact=True).input_value()
        client_secret = once.get_by_label("New client secret", exact=True).input_value()
        self.check("a client is created and its secret shown once", bool(client_id) and len(client_secret) >= 16,
                   f"id={client_id!r}")
        page.get_by_label("API", exact=True).select_option(identifier)
        expect(page.get_by_role("checkbox", name="test")).to_be_checked()
        page.get_by_role("button", name="Add grant").click()
        expect(page.get_by_label(f"Scopes granted on {identifier}", exact=True)).to_have_value("test")
        self.check("a grant of `test` on the API is added", True)
        expect(page.get_by_role("row").filter(has_text=client_id)).to_contain_text("tier=gold")
        page.get_by_label("Metadata (JSON)", exact=True).first.fill('{"tier": "gold", "region": "eu"}')
        page.get_by_role("button", name="Save metadata").click()
        expect(page.get_by_role("status").filter(has_text="Metadata saved")).to_be_visible()
        expect(page.get_by_role("row").filter(has_text=client_id)).to_contain_text("region=eu")
        self.check("client metadata is edited", True)
        page.get_by_role("button", name="Rotate secret").click()
        page.get_by_role("dialog").get_by_role("button", name="Rotate").click()
        expect(once).to_contain_text("New secret for")
        rotated = once.get_by_label("New client secret", exact=True).input_value()
        self.check("the secret is rotated and the new one shown once", rotated and rotated != client_secret)
        old_status, _ = self.token_request(client_id, client_secret, identifier)
        client_secret = rotated
        self.accessible(page, "clients")
        self.shot(page, "03-clients")

        # The seed rule: written, tried, saved.
        self.step("the seed rule: write, Try, Save")
        seed = open(SEED_RULE_PATH).read()
        nav.get_by_role("link", name="Rules", exact=True).click()
        page.get_by_role("button", name="New rule").click()
        rule_name = f"seed-{suffix}"
        page.get_by_label("Name", exact=True).fill(rule_name)
        self.set_editor(page, seed)
        expect(page.locator(".cm-editor .cm-content[contenteditable=true][aria-label='Rule script']")).to_have_count(1)
        expect(page.locator(".cm-content .cm-line span[class]")).not_to_have_count(0)
        self.check("the editor is CodeMirror with JavaScript highlighting", True)
        sample = json.loads(page.get_by_label("Sample event (JSON)", exact=True).input_value())
        sample["audience"] = identifier
        sample["client"]["metadata"] = {"tier": "gold"}
        page.get_by_label("Sample event (JSON)", exact=True).fill(json.dumps(sample, indent=2))
        page.get_by_role("button", name="Try").click()
        result = page.locator(".result")
        expect(result.locator(".badge")).to_have_text("issued")
        expect(page.get_by_label("Token claims", exact=True)).to_contain_text('"https://foo.com/claim": "bar"')
        expect(result).to_contain_text("test extra")
        expect(result).to_contain_text("Fuel used")
        expect(result).to_contain_text(re.compile(r"Time\s*[\d.]+ (µs|ms|s)"))
        self.check("Try runs the editor's script: outcome, claims, fuel and time shown", True)
        self.shot(page, "04-rule-try")
        # Completion from guest-sdk/rule.d.ts.
        editor = page.get_by_role("textbox", name="Rule script")
        editor.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("\ncontext.")
        page.keyboard.press("Control+Space")
        options = page.locator(".cm-tooltip-autocomplete li")
        expect(options.filter(has_text="clientAuthentication")).to_be_visible()
        page.keyboard.press("Escape")
        self.check("completion lists context's fields from rule.d.ts", True)
        self.shot(page, "05-rule-completion")
        self.set_editor(page, seed)
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
        expect(page.get_by_text("Saved", exact=True)).to_be_visible()
        self.check("Save stores the rule", True)

        status, body = self.token_request(client_id, client_secret, identifier)
        self.check("a token is issued from outside the browser (with the rotated secret)", status == 200, f"{status} {body}")
        self.check("the secret rotated out is refused", old_status == 401, f"{old_status}")
        self.check("the token has the rule's scope", body.get("scope") == "test extra", repr(body))
        claims = self.jwt_claims(body["access_token"])
        self.check("the token has the rule's claim", claims.get("https://foo.com/claim") == "bar", repr(claims))

        # A compile error, shown at its line and marked in the editor.
        self.step("a compile error")
        self.set_editor(page, "module.exports = function (client, scope, audience, context, cb) {\n  var token = {;\n  cb(null, token);\n};\n")
        page.get_by_role("button", name="Save").click()
        error = page.get_by_role("alert").filter(has_text="Compile error")
        expect(error).to_contain_text(re.compile(r"line 2, column \d+"))
        expect(page.locator(".cm-lintRange-error")).to_have_count(1)
        expect(page.locator(".cm-lint-marker-error")).to_have_count(1)
        self.check(f"a compile error is shown at its line and marked ({error.inner_text().strip()[:80]})", True)
        self.shot(page, "06-rule-compile-error")

        # A second version that logs, the diff against version 1.
        self.step("versions and secrets")
        logging_rule = seed.replace("cb(null, access_token);", "console.log('tier', client.metadata.tier);\n  cb(null, access_token);")
        self.set_editor(page, logging_rule)
        expect(page.locator(".cm-lintRange-error")).to_have_count(0)
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").filter(has_text="new version")).to_be_visible()
        page.get_by_role("button", name="Diff version 1 against the current version").click()
        diff = page.get_by_label("Diff of version 1 against the current version", exact=True)
        expect(diff.locator(".add")).to_contain_text("console.log('tier', client.metadata.tier);")
        self.check("versions: the diff of version 1 against the current", True)
        page.get_by_role("button", name="Try").click()
        expect(page.locator(".result").get_by_label("Console output", exact=True)).to_contain_text("tier gold")
        self.check("Try shows the console output", True)
        # A secret by name, value write-only.
        page.get_by_label("Secret name", exact=True).fill("BILLING_KEY")
        page.get_by_label("Secret value", exact=True).fill("sk_test_" + suffix)
        page.get_by_role("button", name="Set secret").click()
        expect(page.get_by_role("cell", name="BILLING_KEY", exact=True)).to_be_visible()
        self.check("a rule secret is set by name and its value not shown",
                   ("sk_test_" + suffix) not in page.content())
        self.accessible(page, "rule editor")
        self.shot(page, "07-rule-versions")

        # The rules list: enable/disable and order.
        self.step("the rules list")
        nav.get_by_role("link", name="Rules", exact=True).click()
        toggle = page.get_by_role("checkbox", name=f"Enabled: {rule_name}")
        expect(toggle).to_be_checked()
        toggle.uncheck()
        expect(page.get_by_role("status").filter(has_text="disabled")).to_be_visible()
        expect(page.get_by_role("checkbox", name=f"Enabled: {rule_name}")).not_to_be_checked()
        page.get_by_role("checkbox", name=f"Enabled: {rule_name}").check()
        expect(page.get_by_role("status").filter(has_text="enabled")).to_be_visible()
        expect(page.get_by_role("checkbox", name=f"Enabled: {rule_name}")).to_be_checked()
        self.check("a rule is disabled and enabled from the list", True)
        second = f"second-{suffix}"
        self.management_post("/rules", {"name": second, "enabled": False,
                                        "script": "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: s}); };"})
        page.reload()
        page.get_by_label("Client ID", exact=True).fill(self.args.client_id)
        page.get_by_label("Client secret", exact=True).fill(self.args.client_secret)
        page.get_by_role("button", name="Sign in").click()
        rows = page.locator("tbody tr")
        expect(rows.last).to_contain_text(second)
        before = rows.all_inner_texts()
        page.get_by_role("button", name=f"Move {second} up").click()
        expect(page.get_by_role("status").filter(has_text=f"Moved {second}")).to_be_visible()
        expect(page.locator("tbody tr").nth(len(before) - 2)).to_contain_text(second)
        after = page.locator("tbody tr").all_inner_texts()
        at = next(i for i, t in enumerate(after) if second in t)
        self.check("a rule is moved up in the order", at == len(before) - 2 and rule_name in after[-1], repr(after))
        self.accessible(page, "rules")
        self.shot(page, "08-rules")

        # The Logs pane, live.
        self.step("the Logs pane")
        nav.get_by_role("link", name="Logs", exact=True).click()
        expect(page.locator(".log-status")).to_contain_text("Live")
        status, body = self.token_request(client_id, client_secret, identifier)
        self.check("a second token is issued", status == 200, f"{status} {body}")
        entry = page.locator(".log-entry").filter(has_text=client_id).first
        expect(entry).to_contain_text(rule_name)
        expect(entry).to_contain_text("issued")
        expect(entry).to_contain_text("tier gold")
        expect(entry).to_contain_text(re.compile(r"[\d.]+ (µs|ms|s)"))
        self.check("the execution shows in the Logs pane (client, rule, outcome, duration, console)", True)
        page.get_by_label("Outcome", exact=True).select_option("denied")
        expect(page.locator(".log-entry").filter(has_text=client_id)).to_have_count(0)
        page.get_by_label("Outcome", exact=True).select_option("issued")
        page.get_by_label("Client", exact=True).select_option(client_id)
        expect(page.locator(".log-entry").filter(has_text=client_id).first).to_be_visible()
        page.get_by_label("Rule", exact=True).select_option(label=second)
        expect(page.locator(".log-entry")).to_have_count(0)
        page.get_by_label("Rule", exact=True).select_option(label=rule_name)
        expect(page.locator(".log-entry").filter(has_text=rule_name).first).to_be_visible()
        self.check("the Logs pane filters by outcome, client and rule", True)
        self.accessible(page, "logs")
        self.shot(page, "09-logs")

        # Roll back to version 1.
        self.step("rollback")
        nav.get_by_role("link", name="Rules", exact=True).click()
        page.get_by_role("link", name=rule_name, exact=True).click()
        page.get_by_role("button", name="Roll back to version 1").click()
        page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
        expect(page.get_by_role("status").filter(has_text="Rolled back")).to_contain_text("version 3 has version 1's code")
        self.check("rollback deploys version 1's code as version 3", "console.log" not in self.editor_text(page))
        status, body = self.token_request(client_id, client_secret, identifier)
        self.check("a token after the rollback still has the rule's claim",
                   status == 200 and self.jwt_claims(body["access_token"]).get("https://foo.com/claim") == "bar", f"{status} {body}")

        # Keys: the JWKS and a rotation.
        self.step("keys")
        nav.get_by_role("link", name="Keys", exact=True).click()
        expect(page.get_by_label("JWKS document", exact=True)).to_contain_text('"keys"')
        expect(page.get_by_role("row").filter(has_text="ES256").first).to_be_visible()
        page.get_by_label("Algorithm", exact=True).select_option("ES256")
        page.get_by_role("button", name="Rotate keys").click()
        page.get_by_role("dialog").get_by_role("button", name="Rotate").click()
        expect(page.get_by_role("status").filter(has_text="Rotated")).to_be_visible()
        self.check("keys: the JWKS is shown and a rotation works", True)
        self.accessible(page, "keys")
        self.shot(page, "10-keys")

        self.no_token_in_storage(page, context, "at the end")

        # Narrow.
        self.step("narrow viewport and reload")
        page.set_viewport_size({"width": 390, "height": 800})
        for where, link in (("logs", "Logs"), ("rules", "Rules"), ("clients", "Clients")):
            nav.get_by_role("link", name=link, exact=True).click()
            page.wait_for_timeout(300)
            self.no_horizontal_overflow(page, f"390 px, {where}")
            self.shot(page, f"11-narrow-{where}")
        nav.get_by_role("link", name="Rules", exact=True).click()
        page.get_by_role("link", name=rule_name, exact=True).click()
        expect(page.get_by_role("textbox", name="Rule script")).to_be_visible()
        page.wait_for_timeout(300)
        self.no_horizontal_overflow(page, "390 px, rule editor")
        self.shot(page, "11-narrow-rule-editor")
        page.reload()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        self.check("a reload signs out (the token was in memory only)", True)

        self.check("no request left the origin", not self.foreign_requests, ", ".join(self.foreign_requests[:5]))
        self.check("no Content-Security-Policy violation", not self.csp_violations, " | ".join(self.csp_violations[:3]))
        self.check("no uncaught error in the page", not self.page_errors, " | ".join(self.page_errors[:3]))
        browser.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--screenshots", required=True, help="directory for the PNG screenshots")
    args = parser.parse_args()
    run = Run(args)
    started = time.monotonic()
    try:
        with sync_playwright() as pw:
            try:
                run.scenario(pw)
            except Exception:
                page = getattr(run, "page", None)
                if page is not None:
                    try:
                        print(f"screenshot of the failure: {run.shot(page, 'failure')}", file=sys.stderr)
                    except Exception:  # noqa: BLE001
                        pass
                raise
    except Exception as e:  # noqa: BLE001: any failure is the test's failure
        if not isinstance(e, CheckFailed):
            traceback.print_exc()
        message = str(e).strip().split("\n")[0]
        print(f"FAIL during {run.current!r}: {message}", file=sys.stderr)
        print(f"{len(run.passed)} passed, 1 failed")
        return 1
    print(f"console test took {time.monotonic() - started:.1f} s; screenshots in {args.screenshots}")
    print(f"{len(run.passed)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
