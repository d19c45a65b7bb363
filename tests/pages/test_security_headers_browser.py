"""The pages' security headers as a real Chromium enforces them: a script the pages did not
ship does not run, and no page of another origin can frame them. The ``page`` fixture fails
every browser test whose pages meet a refusal of the policy; these tests show that refusals
are seen."""

from __future__ import annotations

from tests.pages.helpers import sign_in


def test_a_script_injected_into_a_page_is_refused_and_reported(page, live_world):
    """An inline script added to a signed-in page (what an HTML injection would add) does not
    run; Chromium reports the refusal on the console, where the ``page`` fixture looks."""
    page.csp_refusals_expected = True
    sign_in(page, live_world.base_url, "Lege")
    page.evaluate(
        """() => {
            const injected = document.createElement("script");
            injected.textContent = "window.injectedRan = true";
            document.body.append(injected);
        }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.injectedRan === undefined")
    assert any("script-src" in refusal for refusal in page.csp_refusals), page.csp_refusals


def test_no_page_can_frame_a_medloop_page(page, live_world):
    """A page that frames the sign-in page (to have it clicked through unseen) gets an error
    frame, not the page: no page may frame the pages, not even one of their own origin (the
    framing page here, served at the same origin, is the hardest case)."""
    page.csp_refusals_expected = True
    framed = live_world.base_url + "/app/sign-in"
    framing = live_world.base_url + "/framing"
    page.route(
        framing,
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body=f'<!doctype html><title>t</title><iframe id="framed" src="{framed}"></iframe>',
        ),
    )
    page.goto(framing)
    page.wait_for_timeout(500)
    assert page.frame_locator("#framed").locator("form").count() == 0
    assert [frame.url for frame in page.frames][1] != framed
    assert any("frame-ancestors" in refusal for refusal in page.csp_refusals), page.csp_refusals
