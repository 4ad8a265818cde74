"""A plugin used by tests/test_permissions.py: a permission and two personal-data fields."""

from __future__ import annotations

from core.extend import Field, Manifest, Permission, hookimpl

manifest = Manifest(
    name="kyc",
    label="Know your customer",
    label_zh="客户身份识别",
    version="1.0.0",
    description="Test plugin.",
)


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field("customer", "id_number", "string", "ID number", "身份证号", max_length=18, pii=True),
        Field("customer", "home", "string", "Home address", "家庭住址", pii="address"),
        Field("customer", "score", "integer", "Score", "评分"),
    ]


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return [
        Permission(
            "kyc.verify",
            "Verify identities",
            "核验身份",
            "Mark a customer's identity as verified.",
            roles=("admin", "manager"),
        )
    ]
