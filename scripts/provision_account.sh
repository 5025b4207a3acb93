#!/usr/bin/env bash
# Provisions an account of a deployed stack for per-account throttling:
# creates the account's API key in API Gateway (its value is what the
# authorizer answers as usageIdentifierKey: `users-api account usage-key`)
# and adds it to the stack's usage plan (output AccountUsagePlanId).
# Idempotent: an existing key or plan membership is kept.
#
#   scripts/provision_account.sh STACK ACCOUNT
#
# Needs the AWS CLI with credentials for the stack's account and region.
# Create the account's first token with `users-api token create` (see
# docs/deploy.md "Accounts and tokens").
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 STACK ACCOUNT" >&2
    exit 2
fi
stack=$1
account=$2
root=$(cd "$(dirname "$0")/.." && pwd)

value=$(cargo run -q --release --manifest-path "$root/Cargo.toml" -p users-api -- account usage-key "$account")
plan=$(aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='AccountUsagePlanId'].OutputValue" --output text)
if [[ -z "$plan" || "$plan" == "None" ]]; then
    echo "stack $stack has no AccountUsagePlanId output" >&2
    exit 1
fi

name="users-api-$stack-$account"
key_id=$(aws apigateway get-api-keys --name-query "$name" --include-values \
    --query "items[?value=='$value'].id | [0]" --output text)
if [[ -z "$key_id" || "$key_id" == "None" ]]; then
    key_id=$(aws apigateway create-api-key --name "$name" --value "$value" --enabled \
        --description "Users API account $account (usage plan key)" --query id --output text)
    echo "created API key $key_id for account $account"
fi

in_plan=$(aws apigateway get-usage-plan-keys --usage-plan-id "$plan" \
    --query "items[?id=='$key_id'].id | [0]" --output text)
if [[ -z "$in_plan" || "$in_plan" == "None" ]]; then
    aws apigateway create-usage-plan-key --usage-plan-id "$plan" --key-id "$key_id" \
        --key-type API_KEY >/dev/null
    echo "added account $account to usage plan $plan"
else
    echo "account $account is already in usage plan $plan"
fi
