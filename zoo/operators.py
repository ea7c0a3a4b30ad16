"""Who may use the operator tabs (Fine-tune, Models) on a public Space.

Two switches, as for training: ZOO_ALLOW_TRAINING / ZOO_ALLOW_MODEL_ADMIN (on by default, off
where SPACE_ID is set), and ZOO_OPERATORS, an allow-list of Hugging Face user names. With
operators set, the operator tabs show a "Sign in with Hugging Face" button (gr.LoginButton, the
Space's OAuth: the Space builder adds `hf_oauth: true`), and their actions need a signed-in
`gr.OAuthProfile` whose user name is on the list; anyone else gets a refusal naming who may.
Sign-in with Hugging Face exists on a Space only: elsewhere, with operators set, every action is
refused (ZOO_AUTH puts a self-hosted app behind a password instead).

Gradio hands the profile to an event function whose parameter is annotated
`gr.OAuthProfile | None`; `with_profile` adds that parameter to a handler.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Iterator, Mapping

#: The handler parameter gradio fills with the signed-in user's profile (None when nobody is signed in).
PROFILE = "oauth_profile"


def username(profile: Any) -> str | None:
    """The Hugging Face user name of a gr.OAuthProfile (or its dict of OpenID claims), None when signed out."""
    if profile is None:
        return None
    name = getattr(profile, "username", None)
    if not name and isinstance(profile, Mapping):
        name = profile.get("preferred_username")
    return str(name) if name else None


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """True on a Hugging Face Space, where Hugging Face sign-in exists: SPACE_ID and SYSTEM=spaces are set
    there (gradio's own test; elsewhere its LoginButton fakes a login with the machine's HF token)."""
    env = os.environ if env is None else env
    return bool(env.get("SPACE_ID")) and env.get("SYSTEM") == "spaces"


def sign_in_shown(settings: Any, env: Mapping[str, str] | None = None) -> bool:
    """Whether the operator tabs show the Sign in button: operators are set and this is a Space."""
    return bool(settings.operators) and on_space(env)


def operator_refusal(settings: Any, profile: Any, action: str = "do this",
                     env: Mapping[str, str] | None = None) -> str | None:
    """Why this visitor may not `action` here (a sentence with the fix), or None when they may.

    No ZOO_OPERATORS: None (the tab's own switch decides). With operators: only a signed-in
    user on the list (compared ignoring case, as Hugging Face user names are).
    """
    operators = tuple(settings.operators)
    if not operators:
        return None
    allowed = ", ".join(operators)
    name = username(profile)
    if name is None:
        if not on_space(env):
            return (f"Only this server's operators ({allowed}) may {action}, and signing in with Hugging Face "
                    "works on a Space only. Fix: run it on a Space, or unset ZOO_OPERATORS here (ZOO_AUTH "
                    "puts a self-hosted app behind a password).")
        return (f"Only this Space's operators ({allowed}) may {action}. Fix: press “Sign in with Hugging Face” "
                "at the top of this tab and sign in as one of them.")
    if name.casefold() not in {o.casefold() for o in operators}:
        return (f"`{name}` is not an operator here: only {allowed} may {action}. Fix: sign out and sign in "
                "as one of them, or ask the Space's owner to add you to ZOO_OPERATORS.")
    return None


def login_button() -> Any:
    """The Sign in with Hugging Face button (its own import: gradio's OAuth needs authlib and itsdangerous)."""
    import gradio as gr

    return gr.LoginButton(value="Sign in with Hugging Face", logout_value="Sign out ({})", size="sm")


def with_profile(fn: Callable[..., Any], positional: int) -> Callable[..., Any]:
    """`fn` with a parameter gradio fills with the signed-in profile, after its `positional` inputs.

    Gradio finds it by its annotation (read with typing.get_type_hints, so set as an object, not a
    string) on a positional parameter; it is not part of the API's parameters. The wrapper passes it
    to `fn` as the keyword `oauth_profile`.
    """
    import gradio as gr

    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    head, tail = params[:positional], [p for p in params[positional:] if p.name != PROFILE]
    profile = inspect.Parameter(PROFILE, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=gr.OAuthProfile | None)
    if inspect.isgeneratorfunction(fn) or inspect.isgeneratorfunction(getattr(fn, "__wrapped__", None)):
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            values, who = _split(args, kwargs, positional)
            yield from fn(*values, oauth_profile=who, **kwargs)
    else:
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            values, who = _split(args, kwargs, positional)
            return fn(*values, oauth_profile=who, **kwargs)
    wrapper.__signature__ = signature.replace(parameters=[*head, profile, *tail])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {PROFILE: gr.OAuthProfile | None}
    wrapper.__name__ = getattr(fn, "__name__", "handler")
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _split(args: tuple, kwargs: dict[str, Any], positional: int) -> tuple[tuple, Any]:
    if len(args) > positional:
        return args[:positional] + args[positional + 1:], args[positional]
    return args, kwargs.pop(PROFILE, None)


def gate_tab(builder: Any, action: str) -> None:
    """Make a generated tab's endpoint operator-only (the Fine-tune tab): a Sign in button on a Space,
    and every run (UI, API, MCP) refused unless `operator_refusal` lets the signed-in user through."""
    settings = builder.zoo.settings
    if not settings.operators:
        return
    if sign_in_shown(settings):
        login_button()
    make = builder.handler

    def handler(names: Any) -> Callable[..., Iterator[Any]]:
        inner = make(names)

        def gated(*args: Any, oauth_profile: Any = None, **kwargs: Any) -> Iterator[Any]:
            refusal = operator_refusal(settings, oauth_profile, action)
            if refusal is not None:
                import gradio as gr

                raise gr.Error(refusal, title="Operators only", print_exception=False)
            yield from inner(*args, **kwargs)

        gated.__signature__ = inspect.signature(inner)  # type: ignore[attr-defined]
        gated.__name__, gated.__doc__ = inner.__name__, inner.__doc__
        return with_profile(gated, len(list(names)))

    builder.handler = handler  # the tab's wiring (build, wire, api_endpoint) asks for its handler here
