"""Regenerate sample_data/products.csv: a Shopify product export (one row per variant and per
extra image, product columns on the first row only), twelve products, one of them deliberately
bad (no title), which the import rejects.

Run: python sample_data/make_products.py
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).parent

HEADER = [
    "Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags", "Published",
    "Option1 Name", "Option1 Value", "Option1 Linked To", "Option2 Name", "Option2 Value", "Option2 Linked To",
    "Option3 Name", "Option3 Value", "Option3 Linked To", "Variant SKU", "Variant Grams",
    "Variant Inventory Tracker", "Variant Inventory Policy", "Variant Fulfillment Service", "Variant Price",
    "Variant Compare At Price", "Variant Requires Shipping", "Variant Taxable", "Variant Barcode", "Image Src",
    "Image Position", "Image Alt Text", "Gift Card", "SEO Title", "SEO Description",
    "Color (product.metafields.shopify.color-pattern)", "Variant Image", "Variant Weight Unit",
    "Variant Tax Code", "Cost per item", "Status",
]  # fmt: skip

CDN = "https://cdn.shopify.com/s/files/1/0612/3456/7890/files"

# handle, title, body, vendor, category, type, tags, published, status, color,
# options [(name, [values...])], prices per variant, images
PRODUCTS = [
    ("classic-cotton-tee", "Classic Cotton T-Shirt, Unisex, 180 g/m²",
     "<p>Heavyweight <strong>organic cotton</strong> tee.</p><ul><li>Regular fit</li><li>Pre-shrunk</li></ul>",
     "Acme Apparel", "Apparel & Accessories > Clothing > Clothing Tops > T-Shirts", "T-Shirts",
     "cotton, summer", "TRUE", "active", "White",
     [("Size", ["S", "M", "L"])], ["19.95", "19.95", "21.95"], ["classic-tee-front.jpg", "classic-tee-back.jpg"]),
    ("trail-runner-shoe", "Trail Runner GTX Running Shoe",
     "<p>Waterproof trail shoe with a <em>Vibram</em> sole.</p>",
     "Northpeak", "Apparel & Accessories > Shoes > Athletic Shoes", "Shoes", "running, outdoor", "TRUE", "active",
     "Blue", [("Size", ["40", "41", "42"]), ("Color", ["Blue", "Blue", "Blue"])], ["94.00", "89.00", "89.00"],
     ["trail-runner.jpg"]),
    ("stoneware-mug", "Stoneware Coffee Mug 350 ml", "Hand-glazed stoneware mug. Dishwasher safe.",
     "Casa Barro", "Home & Garden > Kitchen & Dining > Tableware > Drinkware > Mugs", "Mugs", "kitchen", "TRUE",
     "active", "Beige", [("Title", ["Default Title"])], ["12.50"], ["stoneware-mug.jpg", "stoneware-mug-side.jpg"]),
    ("merino-beanie", "Merino Wool Beanie", "<p>Soft <b>merino</b> rib knit.</p>", "Acme Apparel",
     "Apparel & Accessories > Clothing Accessories > Hats", "Hats", "wool, winter", "TRUE", "active", "",
     [("Color", ["Grey", "Navy", "Red"])], ["24.95", "24.95", "24.95"], ["merino-beanie.jpg"]),
    ("leather-wallet", "Leather Bifold Wallet", "<p>Full-grain leather, 6 card slots.</p>", "Northpeak",
     "Apparel & Accessories > Handbags, Wallets & Cases > Wallets & Money Clips", "Wallets", "leather", "TRUE",
     "draft", "Brown", [("Title", ["Default Title"])], ["49.00"], ["leather-wallet.jpg"]),
    ("cork-yoga-mat", "Cork Yoga Mat", "<p>Natural cork on a rubber base.</p>", "Zen Studio",
     "Sporting Goods > Athletics > Yoga & Pilates > Yoga Mats", "Yoga", "yoga", "TRUE", "active", "",
     [("Thickness", ["4 mm", "6 mm"])], ["35.00", "39.00"], ["cork-yoga-mat.jpg"]),
    ("espresso-beans-1kg", "Espresso Beans, Dark Roast, 1 kg", "<p>Arabica and robusta blend.</p>", "Tostadero",
     "", "Coffee", "coffee", "TRUE", "active", "", [("Title", ["Default Title"])], ["22.90"], ["espresso-beans.jpg"]),
    ("wool-scarf", "Lambswool Scarf", "<p>Woven in Scotland.</p>", "Highland Weavers",
     "Apparel & Accessories > Clothing Accessories > Scarves & Shawls", "Scarves", "wool, winter", "FALSE",
     "active", "", [("Color", ["Camel", "Grey", "Tartan"])], ["45.00", "45.00", "49.00"], ["wool-scarf.jpg"]),
    ("insulated-bottle", "Insulated Steel Water Bottle",
     "<h2>Keeps drinks cold</h2><ul><li>24 h cold</li><li>12 h hot</li></ul><p>BPA&nbsp;free.</p>", "Northpeak",
     "Home & Garden > Kitchen & Dining > Food & Beverage Carriers > Water Bottles", "Bottles", "outdoor", "TRUE",
     "active", "Silver", [("Size", ["500 ml", "750 ml"])], ["15.00", "18.00"], ["insulated-bottle.jpg"]),
    ("oak-desk-lamp", "Oak Desk Lamp with Linen Shade", "<p>Solid oak base, E27 bulb.</p>", "Casa Barro",
     "Home & Garden > Lighting > Lamps", "Lamps", "lighting", "TRUE", "active", "",
     [("Title", ["Default Title"])], ["59.90"], ["oak-desk-lamp.jpg"]),
    ("packable-rain-jacket", "Packable Rain Jacket", "<p>2.5-layer shell, packs into its pocket.</p>",
     "Northpeak", "Apparel & Accessories > Clothing > Outerwear > Coats & Jackets", "Jackets", "rain, outdoor",
     "TRUE", "active", "Yellow", [("Size", ["S", "M", "L"])], ["119.00", "119.00", "119.00"],
     ["packable-rain-jacket.jpg"]),
    # The deliberately bad product: no title, so the import rejects its rows.
    ("mystery-box", "", "<p>A surprise.</p>", "Acme Apparel", "", "Gift", "", "TRUE", "active", "",
     [("Title", ["Default Title"])], ["30.00"], []),
]  # fmt: skip


def rows() -> list[dict[str, str]]:
    """The export's rows, as Shopify writes them."""
    out: list[dict[str, str]] = []
    for (
        handle,
        title,
        body,
        vendor,
        category,
        type_,
        tags,
        published,
        status,
        color,
        options,
        prices,
        images,
    ) in PRODUCTS:
        for index, price in enumerate(prices):
            row = dict.fromkeys(HEADER, "")
            row["Handle"] = handle
            for number, (name, values) in enumerate(options, start=1):
                row[f"Option{number} Value"] = values[index]
                if index == 0:
                    row[f"Option{number} Name"] = name
            sku = "-".join([handle.upper()[:10], *(values[index].replace(" ", "") for _, values in options)])
            row.update(
                {
                    "Variant SKU": sku if options[0][0] != "Title" else handle.upper()[:10],
                    "Variant Grams": "250",
                    "Variant Inventory Tracker": "shopify",
                    "Variant Inventory Policy": "deny",
                    "Variant Fulfillment Service": "manual",
                    "Variant Price": price,
                    "Variant Requires Shipping": "TRUE",
                    "Variant Taxable": "TRUE",
                    "Variant Weight Unit": "kg",
                    "Cost per item": f"{float(price) / 2:.2f}",
                }
            )
            if index == 0:
                row.update(
                    {
                        "Title": title,
                        "Body (HTML)": body,
                        "Vendor": vendor,
                        "Product Category": category,
                        "Type": type_,
                        "Tags": tags,
                        "Published": published,
                        "Gift Card": "FALSE",
                        "Color (product.metafields.shopify.color-pattern)": color,
                        "Status": status,
                    }
                )
                if images:
                    row.update({"Image Src": f"{CDN}/{images[0]}?v=1712345678", "Image Position": "1"})
            out.append(row)
        for position, image in enumerate(images[1:], start=2):
            row = dict.fromkeys(HEADER, "")
            row.update({"Handle": handle, "Image Src": f"{CDN}/{image}?v=1712345678", "Image Position": str(position)})
            out.append(row)
    return out


def main() -> None:
    with open(HERE / "products.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows())


if __name__ == "__main__":
    main()
