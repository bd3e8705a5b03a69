"""Write a deterministic synthetic Shopify product export: N products, three variant rows each.

Run: python benchmarks/make_product_data.py --products 100000   (writes benchmarks/data/...)

Columns are those of Shopify's product CSV (sample_data/make_products.py): product columns on the
first row of each Handle, Size options S/M/L with their prices, an image, stock and shipping
columns. The same ``seed`` and ``products`` always give byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sample_data"))
from make_products import HEADER  # noqa: E402 - the sample's own header, importable once on the path

DATA_DIR = HERE / "data"
DEFAULT_SEED = 20261203
VENDORS = ("Acme Apparel", "Northpeak", "Casa Barro", "Zen Studio", "Tostadero", "Highland Weavers")
CATEGORIES = (
    "Apparel & Accessories > Clothing > Clothing Tops > T-Shirts",
    "Apparel & Accessories > Shoes > Athletic Shoes",
    "Home & Garden > Kitchen & Dining > Tableware > Drinkware > Mugs",
    "Sporting Goods > Athletics > Yoga & Pilates > Yoga Mats",
    "Home & Garden > Lighting > Lamps",
)
WORDS = ("Classic", "Organic", "Merino", "Trail", "Linen", "Oak", "Cork", "Packable", "Insulated", "Stoneware")
NOUNS = ("Tee", "Shoe", "Mug", "Beanie", "Scarf", "Lamp", "Jacket", "Bottle", "Mat", "Wallet")


def generate(products: int, seed: int = DEFAULT_SEED) -> Iterator[dict[str, str]]:
    """The rows of ``products`` products, three variants each, as Shopify writes them."""
    rng = random.Random(seed)
    for i in range(products):
        handle = f"product-{i:07d}"
        base = rng.randrange(500, 20000)
        for v, size in enumerate(("S", "M", "L")):
            row = dict.fromkeys(HEADER, "")
            price = base + v * rng.choice((0, 0, 200))
            row.update(
                {
                    "Handle": handle,
                    "Option1 Value": size,
                    "Variant SKU": f"{handle.upper()}-{size}",
                    "Variant Grams": "300",
                    "Variant Inventory Tracker": "shopify",
                    "Variant Inventory Policy": "deny",
                    "Variant Fulfillment Service": "manual",
                    "Variant Price": f"{price / 100:.2f}",
                    "Variant Requires Shipping": "TRUE",
                    "Variant Taxable": "TRUE",
                    "Variant Weight Unit": "kg",
                }
            )
            if v == 0:
                title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(NOUNS)} {i}"
                row.update(
                    {
                        "Title": title,
                        "Body (HTML)": f"<p>The <strong>{title}</strong>.</p><ul><li>Care: wash cold</li></ul>",
                        "Vendor": rng.choice(VENDORS),
                        "Product Category": rng.choice(CATEGORIES),
                        "Type": rng.choice(NOUNS),
                        "Tags": "new, bench",
                        "Published": "TRUE",
                        "Option1 Name": "Size",
                        "Image Src": f"https://cdn.shopify.com/s/files/1/0000/0001/files/{handle}.jpg?v=1",
                        "Image Position": "1",
                        "Gift Card": "FALSE",
                        "Status": "active",
                    }
                )
            yield row


def ensure(products: int, data_dir: Path = DATA_DIR, seed: int = DEFAULT_SEED) -> Path:
    """The export of ``products`` products, written once into ``data_dir`` and reused after."""
    path = data_dir / f"shopify_products_{products}.csv"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(generate(products, seed))
    partial.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    print(ensure(args.products, args.data_dir, args.seed))


if __name__ == "__main__":
    main()
