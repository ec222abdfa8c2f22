import hashlib
import json
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse

from marketplace import pricing
from marketplace.money import format_usdc
from marketplace.pricing import ModelSpec
from marketplace.schemas import SchemaRefused, check_json_schema

address_validator = RegexValidator(
    r"^0x[0-9a-fA-F]{40}$", "Enter an EVM address: 0x followed by 40 hex digits."
)
# A bound far below what numeric(18, 6) holds: the largest quote, (input estimate + max output
# tokens) / 1000 x MAX_PRICE, stays within the column and within an invoice's base units.
MAX_PRICE = Decimal("10000")
PRICE_FIELD = {
    "max_digits": 18,
    "decimal_places": 6,
    "validators": [MinValueValidator(Decimal(0)), MaxValueValidator(MAX_PRICE)],
}
# What a provider writes is bounded: it is sent to the model, shown, and stored on every job.
MAX_SYSTEM_PROMPT_CHARS = 20_000
MAX_DESCRIPTION_CHARS = 4_000


class PaymentMode(models.TextChoices):
    # The buyer pays the invoice; then the job runs.
    UPFRONT = "upfront", "Pay before the run"
    # The job runs first; its result is held until the buyer pays.
    ON_COMPLETION = "on_completion", "Pay after delivery"
    # The buyer picks one of the two when ordering.
    BUYER_CHOICE = "buyer_choice", "Buyer chooses"

    @classmethod
    def for_jobs(cls) -> list[tuple[str, str]]:
        """The modes a job runs in (a buyer's choice is one of these)."""
        return [(cls.UPFRONT, cls.UPFRONT.label), (cls.ON_COMPLETION, cls.ON_COMPLETION.label)]


class AgentQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)

    def owned_by(self, user):
        return self.filter(owner=user)


class Agent(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="agents"
    )
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    payout_address = models.CharField(
        max_length=42, validators=[address_validator], help_text="Where this agent's earnings go."
    )
    default_payment_mode = models.CharField(
        max_length=20, choices=PaymentMode.choices, default=PaymentMode.UPFRONT
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            # Buyers tell agents apart by name: "Quill" and "quill" are one name.
            models.UniqueConstraint(
                Lower("name"),
                name="agent_name_unique_ci",
                violation_error_message="Another agent already has this name.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("marketplace:agent", kwargs={"agent_slug": self.slug})

    def clean(self) -> None:
        """Refuse a name another agent has, whatever its case, on the name field."""
        if isinstance(self.name, str) and self.name.strip():
            taken = Agent.objects.filter(name__iexact=self.name.strip()).exclude(pk=self.pk)
            if taken.exists():
                raise ValidationError(
                    {
                        "name": f"Another agent is already called “{self.name.strip()}”: buyers "
                        "tell agents apart by name, so choose another."
                    }
                )


class SkillQuerySet(models.QuerySet):
    def listed(self):
        """Skills buyers can find and order: live, active, and of an active agent."""
        return self.filter(status=Skill.Status.LIVE, is_active=True, agent__is_active=True)

    def owned_by(self, user):
        return self.filter(agent__owner=user)


class Skill(models.Model):
    class Category(models.TextChoices):
        WRITING = "writing", "Writing"
        CODE = "code", "Code"
        DATA = "data", "Data & extraction"
        RESEARCH = "research", "Research & analysis"
        MARKETING = "marketing", "Marketing"
        TRANSLATION = "translation", "Translation"
        OTHER = "other", "Other"

    class OutputFormat(models.TextChoices):
        MARKDOWN = "markdown", "Markdown"
        JSON = "json", "JSON"

    class Pricing(models.TextChoices):
        FIXED = "fixed", "Fixed price"
        PER_1K_TOKENS = "per_1k_tokens", "Per 1,000 tokens, with a minimum"

    class Status(models.TextChoices):
        # Being written and tested: not in the catalog, not orderable.
        DRAFT = "draft", "Draft"
        # Published after a passing test run: in the catalog while active.
        LIVE = "live", "Live"

    # What decides a skill's answers: a change to any of them needs a new test run.
    GENERATION_FIELDS = ("system_prompt", "model", "output_format", "json_schema")

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="skills")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100)
    service_key = models.SlugField(
        "API name",
        max_length=64,
        help_text="How programs name this skill in Vendo's API (public): lowercase letters, "
        "digits and hyphens, unique within the agent. Keep it stable once buyers use it.",
    )
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.OTHER)
    description = models.TextField()
    system_prompt = models.TextField()
    model = models.CharField(max_length=100, default="claude-sonnet-4-5")
    max_output_tokens = models.PositiveIntegerField(default=1024, validators=[MinValueValidator(1)])
    output_format = models.CharField(
        max_length=10, choices=OutputFormat.choices, default=OutputFormat.MARKDOWN
    )
    json_schema = models.JSONField(
        "JSON schema",
        null=True,
        blank=True,
        help_text="Optional, for JSON output: the result must validate against it.",
    )
    pricing = models.CharField(max_length=20, choices=Pricing.choices, default=Pricing.FIXED)
    price = models.DecimalField("fixed price (USDC)", null=True, blank=True, **PRICE_FIELD)
    price_per_1k = models.DecimalField(
        "price per 1,000 tokens (USDC)", null=True, blank=True, **PRICE_FIELD
    )
    min_price = models.DecimalField("minimum price (USDC)", null=True, blank=True, **PRICE_FIELD)
    estimated_seconds = models.PositiveIntegerField("estimated time (seconds)", default=30)
    payment_mode = models.CharField(
        max_length=20,
        choices=PaymentMode.choices,
        blank=True,
        help_text="Leave blank to use the agent's default.",
    )
    is_active = models.BooleanField("active", default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # SHA-256 of the generation fields as saved, and of the version a test run last completed
    # on: publishing needs the two to match.
    fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    tested_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SkillQuerySet.as_manager()

    class Meta:
        ordering = ["category", "name"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "slug"], name="skill_slug_unique_per_agent"),
            models.UniqueConstraint(
                fields=["agent", "service_key"], name="skill_service_key_unique_per_agent"
            ),
            models.CheckConstraint(
                condition=models.Q(pricing="fixed", price__isnull=False)
                | models.Q(
                    pricing="per_1k_tokens", price_per_1k__isnull=False, min_price__isnull=False
                ),
                name="skill_pricing_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent.name} / {self.name}"

    def save(self, *args, **kwargs):
        self.fingerprint = self.compute_fingerprint()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and set(update_fields) & set(self.GENERATION_FIELDS):
            kwargs["update_fields"] = {*update_fields, "fingerprint"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse(
            "marketplace:skill", kwargs={"agent_slug": self.agent.slug, "skill_slug": self.slug}
        )

    def compute_fingerprint(self) -> str:
        """Return the SHA-256 of what decides the answers: prompt, model, format and schema.

        Line endings are read as one (a browser posts a textarea's lines with CRLF), so saving
        an unchanged prompt from the admin never looks like a change.
        """
        values = [getattr(self, name) for name in self.GENERATION_FIELDS]
        material = json.dumps(
            [v.replace("\r\n", "\n") if isinstance(v, str) else v for v in values],
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(material.encode()).hexdigest()

    @property
    def is_live(self) -> bool:
        return self.status == self.Status.LIVE

    @property
    def is_tested(self) -> bool:
        """Whether a test run completed on the version saved now."""
        return bool(self.tested_fingerprint) and self.tested_fingerprint == self.fingerprint

    def clean(self) -> None:
        """Refuse what would hurt the platform or fail every job, with a message per field."""
        errors: dict[str, str] = {}
        self._clean_names(errors)
        self._clean_sizes(errors)
        model = self._clean_model(errors)
        self._clean_prices(errors, model)
        self._clean_schema(errors)
        if errors:
            raise ValidationError(errors)

    def _clean_names(self, errors: dict) -> None:
        # The database's unique constraints hold too; checked here so that the message lands
        # on its field, not at the top of the form.
        if self.agent_id is None:
            return
        siblings = Skill.objects.filter(agent_id=self.agent_id).exclude(pk=self.pk)
        if self.slug and siblings.filter(slug=self.slug).exists():
            errors["slug"] = "Another skill of this agent has this slug: choose another."
        if self.service_key and siblings.filter(service_key=self.service_key).exists():
            errors["service_key"] = "Another skill of this agent has this API name: choose another."

    def _clean_sizes(self, errors: dict) -> None:
        if (
            isinstance(self.system_prompt, str)
            and len(self.system_prompt) > MAX_SYSTEM_PROMPT_CHARS
        ):
            errors["system_prompt"] = (
                f"Keep the system prompt under {MAX_SYSTEM_PROMPT_CHARS:,} characters."
            )
        if isinstance(self.description, str) and len(self.description) > MAX_DESCRIPTION_CHARS:
            errors["description"] = (
                f"Keep the description under {MAX_DESCRIPTION_CHARS:,} characters."
            )

    def _clean_model(self, errors: dict) -> ModelSpec | None:
        models_allowed = pricing.allowed_models()
        model = models_allowed.get(self.model)
        if model is None:
            errors["model"] = f"Choose one of the allowed models: {', '.join(models_allowed)}."
            return None
        if isinstance(self.max_output_tokens, int) and (
            self.max_output_tokens > model.max_output_tokens
        ):
            errors["max_output_tokens"] = (
                f"{model.name} writes at most {model.max_output_tokens:,} output tokens."
            )
        return model

    def _clean_prices(self, errors: dict, model: ModelSpec | None) -> None:
        if self.pricing == self.Pricing.FIXED and self.price is None:
            errors["price"] = "A fixed-price skill needs a price."
        if self.pricing == self.Pricing.PER_1K_TOKENS:
            if self.price_per_1k is None:
                errors["price_per_1k"] = "A per-token skill needs a price per 1,000 tokens."
            if self.min_price is None:
                errors["min_price"] = "A per-token skill needs a minimum price."
        if model is None or "max_output_tokens" in errors:
            return
        # The platform pays the model: a price below its cost turns a skill into a free proxy.
        if self.pricing == self.Pricing.FIXED and isinstance(self.price, Decimal):
            tokens = self.max_output_tokens if isinstance(self.max_output_tokens, int) else 0
            cost = pricing.run_cost(model=model, output_tokens=tokens)
            if self.price <= 0 or self.price < cost:
                errors.setdefault(
                    "price",
                    f"Charge at least {format_usdc(max(cost, pricing.BASE_UNIT))} USDC: one run of "
                    f"{tokens:,} output tokens on {model.name} costs the platform "
                    f"{format_usdc(cost)} USDC.",
                )
        per_1k = self.price_per_1k if self.pricing == self.Pricing.PER_1K_TOKENS else None
        if isinstance(per_1k, Decimal) and per_1k < model.cost_per_1k_output:
            errors.setdefault(
                "price_per_1k",
                f"Charge at least {format_usdc(model.cost_per_1k_output)} USDC per 1,000 tokens: "
                f"what {model.name} costs the platform.",
            )

    def _clean_schema(self, errors: dict) -> None:
        if self.json_schema is None:
            return
        if self.output_format != self.OutputFormat.JSON:
            errors["json_schema"] = "A JSON schema needs the JSON output format."
            return
        try:
            check_json_schema(self.json_schema)
        except SchemaRefused as error:
            errors["json_schema"] = error.message

    @property
    def effective_payment_mode(self) -> str:
        return self.payment_mode or self.agent.default_payment_mode

    def quote(self, prompt: str) -> Decimal:
        """Return the price of running this skill on `prompt`."""
        return pricing.quote(
            pricing=self.pricing,
            price=self.price,
            price_per_1k=self.price_per_1k,
            min_price=self.min_price,
            tokens=pricing.estimate_tokens(prompt) + self.max_output_tokens,
        )


class OperatorAlert(models.Model):
    """Something an operator must see and act on: the platform's AI key refused, the signer out
    of gas, a delivered job whose payment a reorg took back. Raised and cleared by services;
    one row per (kind, key), so a condition that repeats counts up instead of piling up."""

    class Kind(models.TextChoices):
        AI_PLATFORM = "ai_platform", "AI provider refuses the platform's key"
        SIGNER_GAS = "signer_gas", "Platform signer out of gas"
        PAYMENT_REVERTED = "payment_reverted", "Payment reverted after delivery"
        CHAIN = "chain", "Chain node trouble"
        LEDGER = "ledger", "The books do not match the chain"
        OTHER = "other", "Other"

    kind = models.CharField(max_length=30, choices=Kind.choices)
    # What the alert is about, e.g. a payment's id; empty for a platform-wide condition.
    key = models.CharField(max_length=200, blank=True)
    message = models.TextField()
    count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            # One open alert per condition.
            models.UniqueConstraint(
                fields=["kind", "key"],
                condition=models.Q(resolved_at__isnull=True),
                name="operatoralert_open_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:80]}"
