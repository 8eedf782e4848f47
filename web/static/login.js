/* The login page: pick or type an account, unlock it with its passphrase. */
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const pick = $("account-pick");
  pick.addEventListener("change", () => { $("account").value = pick.value; $("passphrase").focus(); });
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    $("login-button").disabled = true;
    try {
      const me = await api("POST", "/api/login", { account: $("account").value, passphrase: $("passphrase").value });
      location.href = me.admin && !me.role ? "/admin" : "/wallet";
    } catch (err) {
      $("login-error").textContent = err.message;
      $("passphrase").select();
    } finally {
      $("login-button").disabled = false;
    }
  });
  try {
    const { accounts } = await api("GET", "/api/accounts");
    for (const account of accounts) {
      pick.append(el("option", { value: account.address,
        textContent: `${account.name} (${account.role}) ${short(account.address)}` }));
    }
  } catch (err) { $("login-error").textContent = err.message; }
});
