#!/usr/bin/python3
"""Browser half of tests/e2e/cockpit/run.sh: headless Chromium through Selenium against the
cockpit-ws that run.sh started in its mount namespace. Prints PASS:/FAIL: lines and the
screenshot paths, exits 1 on any failure.

Environment (from run.sh): PBX_CK_PORT, PBX_CK_TMP (passwords, enroll-USER.json),
PBX_CK_CLI (the built pbx-mfa, run as root to look at the result), PBX_SCREENSHOT_DIR.
"""
import json
import os
import re
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                        TimeoutException, WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

PORT = os.environ["PBX_CK_PORT"]
TMP = os.environ["PBX_CK_TMP"]
CLI = os.environ["PBX_CK_CLI"]
SHOTS = os.environ["PBX_SCREENSHOT_DIR"]
BASE = "http://127.0.0.1:%s" % PORT
PASSWORDS = dict(line.rstrip("\n").split(":", 1) for line in open(os.path.join(TMP, "passwords")))

failures = 0
shots = []


def ok(name):
    print("PASS: " + name, flush=True)


def bad(name):
    global failures
    failures += 1
    print("FAIL: " + name, flush=True)


def check(cond, name, detail=""):
    if cond:
        ok(name)
    else:
        bad(name + (" (" + detail + ")" if detail else ""))
    return cond


def oathtool(key, ahead=0):
    """The TOTP code of base32 KEY now, or AHEAD periods of 30 s later (a code the module
    has not seen yet: window = 1 accepts the next step)."""
    cmd = ["oathtool", "--totp", "-b", key]
    if ahead:
        cmd += ["-N", "now + %d seconds" % (30 * ahead)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


_used_steps = {}


def fresh_code(key):
    """A code of KEY for a time step no earlier code of this test used and the module's
    window (1 step on each side) accepts: now, or the next step; waits for the step to move
    on when both are spent (a code is accepted once)."""
    last = _used_steps.get(key, -1)
    while True:
        now = int(time.time() // 30)
        for step in (now, now + 1):
            if step > last:
                _used_steps[key] = step
                return subprocess.run(["oathtool", "--totp", "-b", key, "-N", "@%d" % (step * 30 + 1)],
                                      check=True, capture_output=True, text=True).stdout.strip()
        time.sleep((now + 1) * 30 - time.time() + 0.2)


def cli_json(*args):
    p = subprocess.run([CLI] + list(args), capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith("SUDO_")})
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"_exit": p.returncode, "_stdout": p.stdout, "_stderr": p.stderr}


def status(user):
    return cli_json("status", "--user", user, "--json")


def no_garbage(text):
    """No run of '?' (what a terminal-only QR drawing or a bad encoding leaves in a browser)."""
    return re.search(r"\?{2,}", text) is None


class Browser:
    def __init__(self):
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,1000", "--user-data-dir=" + os.path.join(TMP, "chromium"),
                  "--no-first-run", "--disable-extensions"):
            opts.add_argument(a)
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        self.d.set_page_load_timeout(30)

    def quit(self):
        try:
            self.d.quit()
        except WebDriverException:
            pass

    def shot(self, name, element=None):
        path = os.path.join(SHOTS, name + ".png")
        if element is not None:
            element.screenshot(path)
        else:
            self.d.save_screenshot(path)
        shots.append(path)
        print("  screenshot: " + path, flush=True)
        return path

    def visible(self, elem_id):
        try:
            return self.d.find_element(By.ID, elem_id).is_displayed()
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    def text(self, elem_id):
        try:
            return self.d.find_element(By.ID, elem_id).text
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    def login_box(self):
        """The login form's card (the page around it is a large background picture)."""
        return self.d.find_element(By.ID, "main")

    def in_shell(self):
        try:
            return bool(self.d.find_elements(By.CSS_SELECTOR, "iframe[name^='cockpit1:']"))
        except WebDriverException:
            return False

    def logout(self):
        """Ends the browser's session: the cookie goes, the next page is the login page."""
        self.d.switch_to.default_content()
        self.d.delete_all_cookies()
        self.d.get(BASE + "/")

    def login(self, user, password, answer=None, superuser=False, timeout=40):
        """Logs in through the login page. ANSWER(prompt, message) answers each conversation
        prompt after the password (None: give up). Returns ("shell", prompts) or
        ("error", text, prompts), prompts being the (prompt, message) pairs seen."""
        d = self.d
        d.switch_to.default_content()
        d.get(BASE + "/")
        WebDriverWait(d, 20).until(lambda _: self.visible("login-user-input"))
        if superuser:
            # What the shell's "administrative access" switch remembers; login.js sends it as
            # X-Superuser, so the session starts its privileged bridge through sudo.
            d.execute_script("localStorage.setItem(arguments[0], 'any')", "superuser:" + user)
        d.find_element(By.ID, "login-user-input").send_keys(user)
        d.find_element(By.ID, "login-password-input").send_keys(password)
        d.find_element(By.ID, "login-button").click()
        prompts = []
        last = None
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.in_shell():
                return ("shell", prompts)
            if self.visible("login-error-message") and self.text("login-error-message"):
                return ("error", self.text("login-error-message"), prompts)
            if self.visible("conversation-input"):
                cur = (self.text("conversation-prompt"), self.text("conversation-message"))
                if cur != last:
                    prompts.append(cur)
                    reply = answer(*cur) if answer else None
                    if reply is None:
                        return ("prompt", cur, prompts)
                    box = d.find_element(By.ID, "conversation-input")
                    box.clear()
                    box.send_keys(reply)
                    d.find_element(By.ID, "login-button").click()
                    last = cur
                    # The same prompt text may come again: wait for the form to move on.
                    t_end = time.time() + 10
                    while time.time() < t_end and self.visible("conversation-input") and \
                            (self.text("conversation-prompt"), self.text("conversation-message")) == cur:
                        time.sleep(0.2)
                    last = None if not self.visible("conversation-input") else cur
                    continue
            time.sleep(0.2)
        return ("timeout", d.page_source[-400:], prompts)

    def open_page(self):
        """Opens the pbx-mfa page in the shell and switches into its frame."""
        d = self.d
        d.switch_to.default_content()
        d.get(BASE + "/pbx-mfa")
        frame = WebDriverWait(d, 30).until(
            lambda _: d.find_elements(By.CSS_SELECTOR, "iframe[name='cockpit1:localhost/pbx-mfa']"))
        d.switch_to.frame(frame[0])
        WebDriverWait(d, 30).until(lambda _: self.visible("pbx-status") and
                                   d.find_element(By.ID, "pbx-status").get_attribute("data-enrolled"))

    def wait(self, cond, timeout=20, what="condition"):
        try:
            return WebDriverWait(self.d, timeout).until(lambda _: cond())
        except TimeoutException:
            return None


def key_of(user):
    with open(os.path.join(TMP, "enroll-%s.json" % user)) as f:
        return json.load(f)["secret"].replace(" ", "")


# ---- flow 1: a login with a code ---------------------------------------------------------------
def flow_login(b):
    user = "pbxtest-ckotp"
    key = key_of(user)
    seen = {}

    def wrong(prompt, message):
        seen["prompt"] = prompt
        b.shot("01-login-code-prompt", b.login_box())
        real = oathtool(key)
        return "000000" if real != "000000" else "111111"

    r = b.login(user, PASSWORDS[user], wrong)
    check(seen.get("prompt", "").startswith("Security code:"),
          "login %s: the password is followed by the prompt 'Security code:'" % user,
          repr(seen.get("prompt")))
    check(r[0] == "error", "login %s: a wrong code is refused" % user, repr(r[:2]))
    r = b.login(user, PASSWORDS[user], lambda p, m: fresh_code(key) if p.startswith("Security code") else None)
    check(r[0] == "shell", "login %s: the code from oathtool lands in the shell" % user, repr(r[:2]))
    b.logout()


# ---- flow 2: enrollment inside the login -------------------------------------------------------
def flow_enroll_at_login(b):
    user = "pbxtest-cknew"
    got = {}
    texts = []

    def answer(prompt, message):
        page_text = b.d.find_element(By.TAG_NAME, "body").text
        texts.append(page_text)
        both = prompt + "\n" + message
        m = re.search(r"otpauth://totp/\S*?[?&]secret=([A-Z2-7]+)", both)
        if m and "key" not in got:
            got["key"] = m.group(1)
            got["grouped"] = re.search(r"Key:\s*((?:[A-Z2-7]{4} )+[A-Z2-7]{1,4})\s+URI:", both)
            b.shot("02-enroll-at-login-key", b.login_box())
            return fresh_code(got["key"])
        if "Press Enter to continue" in prompt:
            got["recovery"] = both
            b.shot("03-enroll-at-login-recovery-codes", b.login_box())
            return ""
        if prompt.startswith("Security code") and "key" in got:
            return None  # asked again after enrolling: a failure
        got.setdefault("unexpected", []).append(prompt)
        return None

    r = b.login(user, PASSWORDS[user], answer, timeout=60)
    check("key" in got, "at-login enrollment: the key (otpauth URI) is in the prompt text",
          repr([p for p in r[-1]])[:600])
    if "key" in got:
        g = got["grouped"]
        check(g is not None and g.group(1).replace(" ", "") == got["key"],
              "at-login enrollment: the key in groups of four matches the URI's secret")
    check("recovery" in got and re.search(r"[a-z0-9]{4,}(?:-[a-z0-9]{4,})+", got["recovery"], re.I),
          "at-login enrollment: recovery codes shown before 'Press Enter to continue:'")
    check(r[0] == "shell", "at-login enrollment: the login lands in the shell", repr(r[:2]))
    check(all(no_garbage(t) for t in texts), "at-login enrollment: no '?' garbage on the page")
    st = status(user)
    check(st.get("enrolled") is True, "at-login enrollment: %s is enrolled afterwards" % user, repr(st))
    b.logout()


# ---- flow 3: the page for the logged-in user ---------------------------------------------------
def flow_page(b):
    user = "pbxtest-ckpage"
    pw = PASSWORDS[user]
    r = b.login(user, pw)
    if not check(r[0] == "shell", "page: %s (not enrolled, not required) logs in with the password"
                 % user, repr(r[:2])):
        return
    b.open_page()
    d = b.d
    check(d.find_element(By.ID, "pbx-status").get_attribute("data-enrolled") == "false",
          "page: #pbx-status says not enrolled", b.text("pbx-status"))
    d.find_element(By.ID, "pbx-setup").click()
    b.wait(lambda: (b.visible("pbx-qr") and b.text("pbx-secret")) or b.text("pbx-message"), 20)
    if not check(b.visible("pbx-qr") and b.text("pbx-secret"),
                 "page: Set up authenticator app shows a QR code and the key", b.text("pbx-message")):
        b.shot("04-page-setup-refused")
        b.logout()
        return
    qr = d.find_element(By.ID, "pbx-qr")
    secret_shown = b.text("pbx-secret")
    b.shot("04-page-setup-qr", d.find_element(By.ID, "pbx-setup-panel"))
    qr_png = b.shot("04-page-setup-qr-canvas", qr)
    z = subprocess.run(["zbarimg", "--raw", "-q", qr_png], capture_output=True, text=True)
    uri = z.stdout.strip()
    print("  zbarimg: " + (uri.split("secret=")[0] + "secret=…" if uri else "(nothing) " + z.stderr.strip()))
    m = re.search(r"[?&]secret=([A-Z2-7]+)", uri)
    check(uri.startswith("otpauth://totp/") and m is not None,
          "page: the QR code on the canvas decodes (zbarimg) to an otpauth URI")
    key = m.group(1) if m else secret_shown.replace(" ", "")
    check(secret_shown.replace(" ", "") == key and re.fullmatch(r"([A-Z2-7]{4} )+[A-Z2-7]{1,4}", secret_shown),
          "page: #pbx-secret shows the QR code's key in groups of four")
    check("issuer=pbxtest-cockpit" in uri and user in uri, "page: the URI names issuer and user")

    def activate(code, password):
        for i in ("pbx-code", "pbx-password"):
            d.find_element(By.ID, i).clear()
        d.find_element(By.ID, "pbx-code").send_keys(code)
        d.find_element(By.ID, "pbx-password").send_keys(password)
        before = b.text("pbx-message")
        d.execute_script("document.getElementById('pbx-message').textContent = ''")
        d.find_element(By.ID, "pbx-activate").click()
        b.wait(lambda: b.text("pbx-message") or b.text("pbx-recovery"), 20)
        return b.text("pbx-message")

    msg = activate(oathtool(key), pw + "-wrong")
    check(msg.startswith("Wrong password"), "page: a wrong password is named as such", repr(msg))
    check(status(user).get("enrolled") is False, "page: after the wrong password nothing is saved")
    msg = activate("000000" if oathtool(key) != "000000" else "111111", pw)
    check(msg.startswith("Wrong code"), "page: a wrong code is named as such", repr(msg))
    check(status(user).get("enrolled") is False, "page: after the wrong code nothing is saved")
    check(b.text("pbx-secret") == secret_shown, "page: the key stays on screen for another try")
    activate(fresh_code(key), pw)
    b.wait(lambda: b.text("pbx-recovery"), 20)
    rec = b.text("pbx-recovery")
    codes = re.findall(r"\b[a-z0-9]{4,}(?:-[a-z0-9]{4,})+\b", rec, re.I)
    check(len(codes) == 3, "page: Activate shows the 3 recovery codes once", repr(rec)[:200])
    b.shot("05-page-recovery-codes", d.find_element(By.ID, "pbx-recovery-box"))
    check(b.text("pbx-secret") == "" and not b.visible("pbx-qr"),
          "page: after Activate the key and the QR code are gone")
    check(d.find_element(By.ID, "pbx-code").get_attribute("value") == "" and
          d.find_element(By.ID, "pbx-password").get_attribute("value") == "",
          "page: after Activate the code and password inputs are empty")
    st = status(user)
    check(st.get("enrolled") is True and st.get("recovery_codes_left") == 3,
          "page: %s is enrolled with 3 recovery codes (pbx-mfa status)" % user, repr(st))
    b.wait(lambda: d.find_element(By.ID, "pbx-status").get_attribute("data-enrolled") == "true", 10)
    check(d.find_element(By.ID, "pbx-status").get_attribute("data-enrolled") == "true",
          "page: #pbx-status says enrolled after Activate", b.text("pbx-status"))
    b.logout()
    seen = []
    r = b.login(user, pw, lambda p, m: (seen.append(p), fresh_code(key))[1]
                if p.startswith("Security code") else None)
    check(seen and r[0] == "shell", "page: the next Cockpit login of %s asks for a code and lands"
          % user, repr(r[:2]))
    if r[0] == "shell":
        page_devices(b, user, pw, key)
    b.logout()


def devices_shown(b):
    return [e.get_attribute("data-device") for e in b.d.find_elements(By.CSS_SELECTOR, "#pbx-devices button[data-device]")] \
        or [e.text for e in b.d.find_elements(By.CSS_SELECTOR, "#pbx-devices li")]


def page_devices(b, user, pw, key):
    """A second device added and removed, on the page. The state is root's (state_dir 0700):
    the user's status shows the enrollment with the state's fields as unknown, and New recovery
    codes (which needs root: the used-code marks are in the state) is not offered."""
    d = b.d
    b.open_page()
    b.wait(lambda: b.visible("pbx-add-device") or
           d.find_element(By.ID, "pbx-status").get_attribute("data-enrolled") != "true", 20)
    if not check(b.visible("pbx-add-device"), "page: an enrolled user is offered Add a device",
                 b.text("pbx-status")):
        return
    check("known to administrators only" in b.text("pbx-status"),
          "page: the user's status names the state's fields as unknown", b.text("pbx-status"))
    check(not b.visible("pbx-new-recovery"),
          "page: New recovery codes is not offered where the state is root's")
    d.find_element(By.ID, "pbx-add-device").click()
    b.wait(lambda: b.visible("pbx-new-device-name"), 10)
    d.find_element(By.ID, "pbx-new-device-name").send_keys("tablet")
    d.find_element(By.ID, "pbx-device-begin-ok").click()
    b.wait(lambda: (b.visible("pbx-qr") and b.text("pbx-secret")) or b.text("pbx-message"), 20)
    if not check(b.visible("pbx-qr") and b.text("pbx-secret"), "page: Add a device shows a QR code",
                 b.text("pbx-message")):
        return
    png = b.shot("08-page-add-device-canvas", d.find_element(By.ID, "pbx-qr"))
    uri = subprocess.run(["zbarimg", "--raw", "-q", png], capture_output=True, text=True).stdout.strip()
    m = re.search(r"[?&]secret=([A-Z2-7]+)", uri)
    check(m is not None and m.group(1) != key, "page: the new device's QR code decodes to a new key")
    if not m:
        return
    d.find_element(By.ID, "pbx-code").send_keys(fresh_code(m.group(1)))
    d.find_element(By.ID, "pbx-password").send_keys(pw)
    d.find_element(By.ID, "pbx-existing-code").send_keys(fresh_code(key))
    d.find_element(By.ID, "pbx-activate").click()
    b.wait(lambda: b.text("pbx-message"), 20)
    check(b.text("pbx-message").startswith("Device"), "page: the device is added", b.text("pbx-message"))
    b.wait(lambda: "tablet" in devices_shown(b), 20)
    st = status(user)
    names = [x if isinstance(x, str) else x.get("name") for x in st.get("devices") or []]
    check("tablet" in names, "page: pbx-mfa status lists the device 'tablet'", repr(st.get("devices")))
    btn = b.wait(lambda: d.find_element(By.CSS_SELECTOR, "#pbx-devices button[data-device='tablet']"), 10)
    if not check(btn is not None, "page: the device list offers Remove"):
        return
    d.execute_script("document.getElementById('pbx-message').textContent = ''")
    btn.click()
    b.wait(lambda: b.visible("pbx-dialog-password"), 10)
    d.find_element(By.ID, "pbx-dialog-password").send_keys(pw)
    d.find_element(By.ID, "pbx-dialog-ok").click()
    b.wait(lambda: b.text("pbx-message"), 20)
    st = status(user)
    names = [x if isinstance(x, str) else x.get("name") for x in st.get("devices") or []]
    check("tablet" not in names and names, "page: Remove takes the device away, the first stays",
          repr(st.get("devices")) + " " + b.text("pbx-message"))


# ---- flow 4: an administrator --------------------------------------------------------------------
def flow_admin(b):
    admin = "pbxtest-ckadm"
    locked = "pbxtest-cklock"
    key = key_of(locked)
    real = oathtool(key)
    for _ in range(3):
        subprocess.run([CLI, "verify", "--user", locked, "000000" if real != "000000" else "111111"],
                       capture_output=True)
    st = status(locked)
    if not check(st.get("locked_until"), "admin: %s is locked out after 3 wrong codes" % locked, repr(st)):
        return
    r = b.login(admin, PASSWORDS[admin], superuser=True)
    if not check(r[0] == "shell", "admin: %s logs in with administrative access" % admin, repr(r[:2])):
        return
    b.open_page()
    d = b.d
    b.wait(lambda: b.visible("pbx-users") and d.find_elements(By.CSS_SELECTOR, "#pbx-users tr[data-user]"), 30)
    rows = {tr.get_attribute("data-user"): tr for tr in d.find_elements(By.CSS_SELECTOR, "#pbx-users tr[data-user]")}
    check(locked in rows, "admin: #pbx-users lists %s" % locked, ", ".join(rows))
    Select(d.find_element(By.ID, "pbx-filter")).select_by_value("locked")
    time.sleep(0.3)
    shown = [tr.get_attribute("data-user") for tr in d.find_elements(By.CSS_SELECTOR, "#pbx-users tr[data-user]")
             if tr.is_displayed()]
    check(shown == [locked], "admin: the filter 'locked' shows only %s" % locked, repr(shown))
    b.shot("06-admin-users-locked", d.find_element(By.ID, "pbx-admin"))
    Select(d.find_element(By.ID, "pbx-filter")).select_by_value("all")

    def act(user, action):
        d.execute_script("document.getElementById('pbx-admin-result').textContent = ''")
        # The table is drawn anew after each action: wait for the user's row to be there.
        button = b.wait(lambda: d.find_element(
            By.CSS_SELECTOR, "#pbx-users tr[data-user='%s'] button[data-action='%s']" % (user, action)), 20)
        button.click()
        b.wait(lambda: b.visible("pbx-dialog"), 10)
        dialog_text = b.text("pbx-dialog-text")
        d.find_element(By.ID, "pbx-dialog-ok").click()
        b.wait(lambda: b.text("pbx-admin-result") and not b.text("pbx-admin-result").startswith("Running"), 30)
        # ... and for the table drawn after it, so the next click finds a live row.
        b.wait(lambda: d.execute_script("return document.getElementById('pbx-users').getAttribute('data-loading')") != "1", 20)
        return dialog_text, b.text("pbx-admin-result")

    q, res = act(locked, "unlock")
    check(locked in q, "admin: Unlock asks for confirmation naming the user", repr(q))
    check(locked in res and "nlock" in res, "admin: Unlock shows its result", repr(res))
    st = status(locked)
    check(not st.get("locked_until") and st.get("failures") == 0, "admin: %s is unlocked" % locked, repr(st))
    q, res = act(locked, "temp-code")
    code = b.text("pbx-temp-code")
    check(re.fullmatch(r"[0-9A-Za-z-]{6,}", code or "") is not None,
          "admin: Temporary code shows a code", repr(res))
    b.shot("07-admin-temp-code", d.find_element(By.ID, "pbx-admin-result"))
    b.logout()
    r = b.login(locked, PASSWORDS[locked], lambda p, m: code if p.startswith("Security code") else None)
    check(r[0] == "shell", "admin: %s logs in to Cockpit with the temporary code" % locked, repr(r[:2]))
    b.logout()


def main():
    os.makedirs(SHOTS, exist_ok=True)
    t0 = time.time()
    b = Browser()
    print("  browser started in %.1f s" % (time.time() - t0), flush=True)
    flows = [("login with a code", flow_login), ("enrollment at login", flow_enroll_at_login),
             ("page setup", flow_page), ("administrator", flow_admin)]
    only = os.environ.get("PBX_CK_FLOWS")
    timings = []
    try:
        for name, fn in flows:
            if only and fn.__name__ not in only.split(","):
                continue
            t = time.time()
            print("---- flow: " + name, flush=True)
            try:
                fn(b)
            except Exception as e:  # one broken flow must not hide the others
                bad("flow '%s' stopped: %s: %s" % (name, type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
                try:
                    b.d.switch_to.default_content()
                    b.shot("error-" + fn.__name__)
                    b.logout()
                except WebDriverException:
                    pass
            timings.append((name, time.time() - t))
    finally:
        b.quit()
    for name, secs in timings:
        print("  timing: %-22s %5.1f s" % (name, secs))
    print("  screenshots: " + " ".join(shots))
    print("test_cockpit: %d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
