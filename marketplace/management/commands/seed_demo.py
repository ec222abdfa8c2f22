"""Create the demo catalog: an operator, two providers with agents, and varied skills."""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from marketplace.models import Agent, PaymentMode, Skill
from marketplace.permissions import provider_group_sync
from payments.devchain import ANVIL_ACCOUNTS

# Demo logins, printed by `make run`. DEBUG only: these passwords are public.
OPERATOR = ("operator", "vendo-operator")
PROVIDERS = [("ada", "vendo-provider"), ("grace", "vendo-provider")]

AGENTS = [
    {
        "owner": "ada",
        "slug": "quill",
        "name": "Quill",
        "description": "A careful editor and writer. Quill drafts, tightens and restructures "
        "prose for people who care how their words land.",
        "payout_address": ANVIL_ACCOUNTS[3][0],
    },
    {
        "owner": "ada",
        "slug": "ledger",
        "name": "Ledger",
        "description": "Turns messy text into clean, structured data you can load anywhere.",
        "payout_address": ANVIL_ACCOUNTS[3][0],
    },
    {
        "owner": "grace",
        "slug": "compiler",
        "name": "Compiler",
        "description": "A senior engineer on call: code reviews, explanations and tests.",
        "payout_address": ANVIL_ACCOUNTS[4][0],
    },
]

SKILLS = [
    {
        "agent": "quill",
        "slug": "tighten-prose",
        "model": "claude-sonnet-4-5",
        "name": "Tighten my prose",
        "category": Skill.Category.WRITING,
        "description": "Paste up to a few pages. Get back a tighter version that keeps your "
        "voice, plus a short list of what changed and why.",
        "system_prompt": "You are a meticulous line editor. Rewrite the user's text to be "
        "clearer and shorter while keeping the author's voice, meaning and any technical "
        "terms. Return Markdown with two sections: '## Revised text' and '## What changed' "
        "(3-7 bullets, each naming a pattern you fixed). Never add facts.",
        "pricing": Skill.Pricing.PER_1K_TOKENS,
        "price_per_1k": Decimal("0.020000"),
        "min_price": Decimal("0.250000"),
        "max_output_tokens": 2048,
        "estimated_seconds": 25,
    },
    {
        "agent": "quill",
        "slug": "launch-post",
        "model": "claude-sonnet-4-5",
        "name": "Product launch post",
        "category": Skill.Category.MARKETING,
        "description": "Describe what you shipped and for whom. Get a launch post with a "
        "headline, three benefit-led paragraphs and a call to action.",
        "system_prompt": "You write launch announcements for software products. From the "
        "user's notes, write a Markdown post: an H1 headline under 10 words, a one-sentence "
        "summary in bold, three short sections with H2 headings on concrete benefits, and a "
        "closing call to action. Plain, specific language; no hype words like 'revolutionary'.",
        "price": Decimal("1.500000"),
        "max_output_tokens": 1200,
        "estimated_seconds": 20,
    },
    {
        "agent": "quill",
        "slug": "translate-fr",
        "model": "claude-sonnet-4-5",
        "name": "English → French translation",
        "category": Skill.Category.TRANSLATION,
        "description": "Natural, idiomatic French for product copy, emails and docs.",
        "system_prompt": "Translate the user's English text into natural, idiomatic French "
        "suitable for a professional audience. Keep Markdown formatting, code and product "
        "names unchanged. Return only the translation.",
        "pricing": Skill.Pricing.PER_1K_TOKENS,
        "price_per_1k": Decimal("0.015000"),
        "min_price": Decimal("0.100000"),
        "max_output_tokens": 2048,
        "estimated_seconds": 15,
        "payment_mode": PaymentMode.ON_COMPLETION,
    },
    {
        "agent": "ledger",
        "slug": "extract-invoice",
        "model": "claude-haiku-4-5",
        "name": "Invoice data extraction",
        "category": Skill.Category.DATA,
        "description": "Paste the text of an invoice or receipt. Get the vendor, dates, line "
        "items and totals as validated JSON.",
        "system_prompt": "You extract structured data from invoices and receipts. Read the "
        "user's text and fill every field you can find; use null when a value is absent. "
        "Amounts are numbers without currency symbols; dates are ISO 8601.",
        "output_format": Skill.OutputFormat.JSON,
        "json_schema": {
            "type": "object",
            "required": ["vendor", "currency", "line_items", "total"],
            "properties": {
                "vendor": {"type": "string"},
                "invoice_date": {"type": ["string", "null"]},
                "currency": {"type": "string"},
                "line_items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["description", "amount"],
                        "properties": {
                            "description": {"type": "string"},
                            "quantity": {"type": "number"},
                            "amount": {"type": "number"},
                        },
                    },
                },
                "total": {"type": "number"},
            },
        },
        "price": Decimal("0.750000"),
        "max_output_tokens": 1024,
        "estimated_seconds": 10,
    },
    {
        "agent": "ledger",
        "slug": "meeting-actions",
        "model": "claude-haiku-4-5",
        "name": "Meeting notes → action items",
        "category": Skill.Category.DATA,
        "description": "Turn raw meeting notes into decisions and owned action items, as JSON "
        "you can pipe into your tracker.",
        "system_prompt": "From the user's meeting notes, list the decisions taken and the "
        "action items. Each action item has an owner (a name from the notes, or 'unassigned'), "
        "a task written as an imperative sentence, and a due date if one was said.",
        "output_format": Skill.OutputFormat.JSON,
        "json_schema": {
            "type": "object",
            "required": ["decisions", "action_items"],
            "properties": {
                "decisions": {"type": "array", "items": {"type": "string"}},
                "action_items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["owner", "task"],
                        "properties": {
                            "owner": {"type": "string"},
                            "task": {"type": "string"},
                            "due": {"type": ["string", "null"]},
                        },
                    },
                },
            },
        },
        "price": Decimal("0.500000"),
        "max_output_tokens": 1024,
        "estimated_seconds": 10,
    },
    {
        "agent": "compiler",
        "slug": "code-review",
        "model": "claude-sonnet-4-5",
        "name": "Code review",
        "category": Skill.Category.CODE,
        "description": "Paste a function or a diff. Get a prioritised review: bugs first, then "
        "risks, then style, each with a suggested fix.",
        "system_prompt": "You are a senior engineer doing a code review. Find real problems in "
        "the user's code: correctness bugs first, then security and performance risks, then "
        "readability. For each, quote the line, explain the problem in one or two sentences "
        "and show a fix in a fenced code block with the right language tag. End with a one-line "
        "verdict. Do not invent problems to fill space.",
        "pricing": Skill.Pricing.PER_1K_TOKENS,
        "price_per_1k": Decimal("0.030000"),
        "min_price": Decimal("0.500000"),
        "max_output_tokens": 3000,
        "estimated_seconds": 40,
    },
    {
        "agent": "compiler",
        "slug": "explain-error",
        "model": "claude-haiku-4-5",
        "name": "Explain this error",
        "category": Skill.Category.CODE,
        "description": "Paste a stack trace or error message with a little context. Get the "
        "likely cause and the steps to fix it.",
        "system_prompt": "Explain the user's error message or stack trace. Return Markdown with "
        "'## What it means' (plain words), '## Likely causes' (ranked bullets) and '## How to "
        "fix it' (numbered steps with code where useful).",
        "price": Decimal("0.300000"),
        "max_output_tokens": 1200,
        "estimated_seconds": 15,
    },
    {
        "agent": "compiler",
        "slug": "unit-tests",
        "model": "claude-sonnet-4-5",
        "name": "Write unit tests",
        "category": Skill.Category.CODE,
        "description": "Give a function and its language. Get pytest or Jest tests covering the "
        "normal path, edge cases and errors.",
        "system_prompt": "Write unit tests for the user's code in its language's standard test "
        "framework (pytest for Python, Jest for JavaScript/TypeScript). Cover the normal path, "
        "edge cases and error handling. Return one fenced code block, then a short list of "
        "what each test checks.",
        "price": Decimal("2.000000"),
        "max_output_tokens": 2500,
        "estimated_seconds": 35,
    },
]


class Command(BaseCommand):
    help = "Create the demo operator, providers, agents and skills (idempotent; DEBUG only)."

    @transaction.atomic
    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo creates accounts with public passwords: DEBUG only.")
        User = get_user_model()
        providers = provider_group_sync()
        operator = self.user(User, *OPERATOR, superuser=True)
        owners = {}
        for username, password in PROVIDERS:
            owners[username] = self.user(User, username, password)
            owners[username].groups.add(providers)
        agents = {}
        for spec in AGENTS:
            spec = dict(spec)
            owner, slug = owners[spec.pop("owner")], spec.pop("slug")
            agents[slug], _ = Agent.objects.update_or_create(
                slug=slug, defaults={"owner": owner, **spec}
            )
        for spec in SKILLS:
            spec = dict(spec)
            agent = agents[spec.pop("agent")]
            spec.setdefault("service_key", spec["slug"])
            skill = Skill.objects.filter(agent=agent, slug=spec["slug"]).first() or Skill()
            for name, value in {"agent": agent, **spec}.items():
                setattr(skill, name, value)
            # The demo catalog obeys the same rules as a provider's skill.
            try:
                skill.full_clean()
            except ValidationError as error:
                raise CommandError(f"Demo skill {skill.slug}: {error.message_dict}") from error
            # Marked live by the seed itself, without the test run a provider's skill needs
            # before publishing: the demo must open on a catalog, and a test run would call
            # the model (or the offline sampler) for every demo skill on every `make run`.
            skill.status = Skill.Status.LIVE
            skill.save()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {len(agents)} agents, {len(SKILLS)} skills; operator "
                f"{operator.username}, providers {', '.join(owners)}."
            )
        )

    def user(self, User, username: str, password: str, superuser: bool = False):
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": superuser}
        )
        if created:
            user.set_password(password)
            user.email = f"{username}@vendo.test"
            user.save()
        return user
