// Show the first few items of the catalogue.
(async () => {
  const list = document.getElementById("items");
  for (let id = 1; id <= 5; id++) {
    const r = await fetch(`/api/items/${id}`);
    if (!r.ok) continue;
    const item = await r.json();
    const li = document.createElement("li");
    li.textContent = `${item.name}: ${(item.price / 100).toFixed(2)}`;
    list.appendChild(li);
  }
})();
